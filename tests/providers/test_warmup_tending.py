"""The warm-up pool's receiving side through Graph and Gmail, each against its stand-in on
loopback: warm-up emails are found by Message-ID in any folder (inbox, spam, elsewhere),
each is marked read and flagged / important, the one in spam is moved to the inbox, a
message that is not warm-up is left as it was, and a grant that may only read says
"reconnect"."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from mailramp.errors import MailboxUnusableError
from mailramp.kit.ids import new_object_id
from mailramp.kit.marked_ids import WarmupMarker, new_key
from mailramp.mailboxes.models import Mailbox
from mailramp.mailboxes.service import MailboxCredentials
from mailramp.mailboxes.transport import TendedWarmup, WarmupInbox
from mailramp.providers.registry import DefaultInboxes
from tests.providers.apis import Api
from tests.support.gmail_server import GmailMessage, GmailServer
from tests.support.graph_server import GraphMessage, GraphServer
from tests.support.provider_mail import Tokens, newsletter

RECEIVED = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)
GRAPH_FOLDERS = {"inbox": "inbox", "spam": "junkemail", "other": "archive"}
GMAIL_LABELS = {"inbox": ("INBOX", "UNREAD"), "spam": ("SPAM", "UNREAD"), "other": ("UNREAD",)}


def _warmup_email(message_id: str, *, to: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Ben <ben@two.example>"
    message["To"] = to
    message["Subject"] = "Quick question about Thursday"
    message["Message-ID"] = message_id
    message.set_content("Hi, are we still on for Thursday? Ben\n")
    return message.as_bytes()


def _deliver(api: Api, raw: bytes, place: str) -> GraphMessage | GmailMessage:
    server = api.server
    if isinstance(server, GraphServer):
        return server.deliver(raw, received_at=RECEIVED, folder=GRAPH_FOLDERS[place])
    assert isinstance(server, GmailServer)
    return server.deliver(raw, received_at=RECEIVED, labels=GMAIL_LABELS[place])


def _state(stored: GraphMessage | GmailMessage) -> tuple[str, bool, bool]:
    """Where the message is now, whether it is read, whether it is flagged / important."""
    if isinstance(stored, GraphMessage):
        place = {v: k for k, v in GRAPH_FOLDERS.items()}[stored.folder]
        return place, stored.is_read, stored.flag_status == "flagged"
    labels = set(stored.labels)
    place = "spam" if "SPAM" in labels else "inbox" if "INBOX" in labels else "other"
    return place, "UNREAD" not in labels, "IMPORTANT" in labels


async def test_warm_up_emails_are_found_anywhere_read_flagged_and_rescued(api: Api) -> None:
    marker = WarmupMarker(new_key())
    ids = {place: marker.message_id("two.example") for place in ("inbox", "spam", "other")}
    stored = {
        place: _deliver(api, _warmup_email(i, to=api.sender), place) for place, i in ids.items()
    }
    news = _deliver(api, newsletter(1, to=api.sender), "inbox")
    missing = marker.message_id("two.example")  # sent, never arrived
    provider = api.provider()
    inbox = provider.inbox()

    tended = await inbox.tend_warmup([*ids.values(), missing])

    folders = (
        {"inbox": "Inbox", "spam": "Junk Email", "other": "Archive"}
        if api.name == "Graph"
        else {"inbox": "INBOX", "spam": "SPAM", "other": "All Mail"}
    )
    assert sorted(tended, key=lambda t: t.placement) == [
        TendedWarmup(ids["inbox"], "inbox", folders["inbox"], rescued=False),
        TendedWarmup(ids["other"], "other", folders["other"], rescued=False),
        TendedWarmup(ids["spam"], "spam", folders["spam"], rescued=True),
    ]
    # The one in spam is in the inbox now; each is read and flagged, wherever it stays.
    assert _state(stored["inbox"]) == ("inbox", True, True)
    assert _state(stored["spam"]) == ("inbox", True, True)
    assert _state(stored["other"]) == ("other", True, True)
    assert _state(news) == ("inbox", False, False)

    # Tended again (a pass that crashed before recording), each is found where it is now.
    again = await inbox.tend_warmup([ids["spam"]])
    assert again == [TendedWarmup(ids["spam"], "inbox", folders["inbox"], rescued=False)]
    await provider.close()


async def test_a_grant_that_may_only_read_says_reconnect(api: Api) -> None:
    message_id = WarmupMarker(new_key()).message_id("two.example")
    stored = _deliver(api, _warmup_email(message_id, to=api.sender), "spam")
    api.server.writable = False
    provider = api.provider()

    with pytest.raises(MailboxUnusableError, match="reconnect this mailbox to grant"):
        await provider.inbox().tend_warmup([message_id])
    await provider.close()

    assert _state(stored) == ("spam", False, False)


@pytest.mark.parametrize("provider", ["outlook", "gmail"])
async def test_the_registry_s_api_inboxes_tend_warm_up_and_close(
    provider: str, graph: GraphServer, gmail: GmailServer
) -> None:
    sender = "ann@contoso.com" if provider == "outlook" else "ann@example.net"
    server: GraphServer | GmailServer = graph if provider == "outlook" else gmail
    message_id = WarmupMarker(new_key()).message_id("two.example")
    raw = _warmup_email(message_id, to=sender)
    if isinstance(server, GraphServer):
        server.deliver(raw, received_at=RECEIVED, folder="junkemail")
    else:
        server.deliver(raw, received_at=RECEIVED, labels=("SPAM", "UNREAD"))
    inboxes = DefaultInboxes(
        tokens=lambda mailbox, credentials: Tokens("good"),
        graph_url=graph.url,
        gmail_url=gmail.url,
    )
    box = new_object_id()
    mailbox = Mailbox(
        id=box,
        mailbox_id=box,
        user_id=new_object_id(),
        email=sender,
        provider=provider,
        created_at=RECEIVED,
        updated_at=RECEIVED,
    )
    inbox = inboxes(mailbox, MailboxCredentials(box))

    assert isinstance(inbox, WarmupInbox)
    tended = await inbox.tend_warmup([message_id])

    assert [(t.placement, t.rescued) for t in tended] == [("spam", True)]
    assert len(server.seen("/move" if provider == "outlook" else "/modify")) == 1
