"""The two mailbox APIs as the provider tests see them: a stand-in, a provider pointed at
it, and what differs between them (paths, error codes, what a refusal says)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mailramp.errors import ThrottledError
from mailramp.mailboxes.transport import InboxBatch
from mailramp.providers.gmail import GmailClient, GmailInbox, GmailProvider
from mailramp.providers.graph import GraphClient, GraphInbox, GraphProvider
from mailramp.tracking.inbound import InboundKind, classify_inbound
from tests.support.api_stand_in import ApiStandIn
from tests.support.provider_mail import (
    POSTFIX,
    Reporter,
    Tokens,
    campaign_message,
    dsn,
    newsletter,
    reply,
)

Provider = GraphProvider | GmailProvider
Inbox = GraphInbox | GmailInbox


@dataclass
class Api:
    """One API under test."""

    name: str
    server: ApiStandIn
    provider_class: type[Provider]
    client_class: type[GraphClient] | type[GmailClient]
    throttled_error: type[ThrottledError]
    sender: str
    inbox_path: str  # what the path of an inbox listing contains
    no_read_scope: str  # the error code (reason) of a 403 to a mailbox without a read scope
    refused_recipient: str  # what the error of a refused recipient says
    reporter: Reporter = POSTFIX  # who bounces its mail
    options: dict[str, Any] = field(default_factory=dict)  # what its providers are made with

    def provider(
        self, tokens: Tokens | None = None, *, base_url: str | None = None, **options: Any
    ) -> Provider:
        """A provider for the sender's mailbox, on the stand-in unless `base_url` says."""
        client = self.client_class(
            tokens or Tokens("good"),
            base_url=base_url or self.server.url,
            **(self.options | options),
        )
        return self.provider_class(self.sender, client)

    async def send(
        self, mailbox: Provider, record_id: str, recipient: str = "bob@example.com"
    ) -> None:
        """Send the campaign message of `record_id` to `recipient`."""
        message = campaign_message(record_id, recipient, sender=self.sender)
        await mailbox.send(message, sender=self.sender, recipient=recipient)

    def deliver_mixed_inbox(self, sent_id: str, *, start: datetime, last_offset: timedelta) -> None:
        """Five messages a minute apart from `start` (the last one `last_offset` after it):
        news, a reply to `sent_id`, news, a bounce of `sent_id`, news."""
        to = self.sender
        arrivals = [
            (timedelta(0), newsletter(1, to=to)),
            (timedelta(minutes=1), reply(sent_id, to=to)),
            (timedelta(minutes=2), newsletter(2, to=to)),
            (timedelta(minutes=3), dsn("gone@example.com", sent_id, to=to, reporter=self.reporter)),
            (last_offset, newsletter(3, to=to)),
        ]
        for offset, raw in arrivals:
            self.server.deliver(raw, received_at=start + offset)

    async def later_polls_read_only_what_is_new(
        self, mailbox: Provider, inbox: Inbox, batch: InboxBatch, sent_id: str, *, now: datetime
    ) -> None:
        """After `batch` (read by `inbox` at `now`), a poll from its newest position finds
        nothing; a reply received at `now` is read five minutes later, at its own position."""
        last = max(uid for uid, _ in batch.messages)
        again = await inbox.fetch_new(uid_validity=batch.uid_validity, last_uid=last)
        assert again.messages == []

        later = now + timedelta(minutes=5)
        self.server.deliver(reply(sent_id, to=self.sender, own="reply2"), received_at=now)
        newer = await mailbox.inbox(clock=lambda: later).fetch_new(
            uid_validity=batch.uid_validity, last_uid=last
        )
        [(uid, raw)] = newer.messages
        assert uid == int(now.timestamp() * 1000)
        assert classify_inbound(raw).message_id == "<reply2@example.com>"


def assert_mixed_inbox_read(batch: InboxBatch, sent_id: str) -> None:
    """The five messages of `deliver_mixed_inbox` were read, in order, each for what it is."""
    kinds = [classify_inbound(raw) for _, raw in batch.messages]
    assert [k.kind for k in kinds] == [
        InboundKind.UNRELATED,
        InboundKind.REPLY,
        InboundKind.UNRELATED,
        InboundKind.HARD_BOUNCE,
        InboundKind.UNRELATED,
    ]
    assert kinds[1].references[0] == sent_id
    assert kinds[3].references == [sent_id]
    assert kinds[3].recipient == "gone@example.com"


def assert_headers_intact(received: Any, record_id: str, *, sender: str) -> None:
    """The message arrived with every header mailramp set, and its HTML part."""
    domain = sender.rpartition("@")[2]
    assert received["Message-ID"] == f"<{record_id}.mailramp@{domain}>"
    assert received["In-Reply-To"] == f"<earlier.mailramp@{domain}>"
    assert received["List-Unsubscribe"] == "<https://mailramp.example/u/rec1?sig=abc>"
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received["To"] == "bob@example.com"
    html = received.get_body(("html",))
    assert html is not None and "Hi Bob" in html.get_content()
