"""The Graph provider against a Graph stand-in on loopback: MIME sending with the headers
intact, token refresh on 401, Retry-After, four requests at a time, finding a sent message,
and reading replies and bounces from the inbox page by page."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import httpx
import pytest

from mailramp.providers import (
    MailboxUnusableError,
    PermanentSendError,
    TransientSendError,
    UncertainSendError,
)
from mailramp.providers.graph import GRAPH_UID_VALIDITY, GraphProvider, GraphThrottledError
from mailramp.tracking.inbound import InboundKind, classify_inbound
from tests.support.graph_server import GraphServer
from tests.support.postgres import free_port

SENDER = "ann@contoso.com"
UNSUBSCRIBE = "<https://mailramp.example/u/rec1?sig=abc>"


class Tokens:
    """The OAuth side as the provider sees it: a current token, and a new one on demand."""

    def __init__(self, *tokens: str) -> None:
        self._tokens = list(tokens)
        self.refreshes = 0

    async def access_token(self, *, force_refresh: bool = False) -> str:
        if force_refresh:
            self.refreshes += 1
            self._tokens.pop(0)
        return self._tokens[0]


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    server = GraphServer(tokens={"good"}).start()
    yield server
    server.stop()


def campaign_message(record_id: str, recipient: str) -> Message:
    """Built with the same compat32 classes and headers as sending/message.py."""
    message = MIMEMultipart("alternative")
    message.attach(MIMEText("Hi Bob, see https://acme.example\n", "plain", "utf-8"))
    message.attach(MIMEText("<p>Hi Bob</p>", "html", "utf-8"))
    message["From"] = f"Ann <{SENDER}>"
    message["To"] = recipient
    message["Subject"] = "Hello Bob"
    message["Date"] = "Mon, 03 Mar 2025 10:00:00 +0000"
    message["Message-ID"] = f"<{record_id}.mailramp@contoso.com>"
    message["In-Reply-To"] = "<earlier.mailramp@contoso.com>"
    message["List-Unsubscribe"] = UNSUBSCRIBE
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return message


def provider(
    graph: GraphServer, tokens: Tokens | None = None, *, max_wait_seconds: float = 30
) -> GraphProvider:
    return GraphProvider(
        SENDER, tokens or Tokens("good"), base_url=graph.url, max_wait_seconds=max_wait_seconds
    )


async def test_sends_mime_with_every_header_intact(graph: GraphServer) -> None:
    mailbox = provider(graph)
    await mailbox.send(
        campaign_message("rec1", "bob@example.com"), sender=SENDER, recipient="bob@example.com"
    )
    await mailbox.close()

    [received] = graph.sent
    assert received["Message-ID"] == "<rec1.mailramp@contoso.com>"
    assert received["In-Reply-To"] == "<earlier.mailramp@contoso.com>"
    assert received["List-Unsubscribe"] == UNSUBSCRIBE
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received["To"] == "bob@example.com"
    html = received.get_body(("html",))
    assert html is not None and "Hi Bob" in html.get_content()


async def test_finds_the_sent_message_by_its_internet_message_id(graph: GraphServer) -> None:
    mailbox = provider(graph)
    await mailbox.send(
        campaign_message("rec2", "bob@example.com"), sender=SENDER, recipient="bob@example.com"
    )

    assert await mailbox.find_sent_message_id("<rec2.mailramp@contoso.com>") == (
        "<rec2.mailramp@contoso.com>"
    )
    assert await mailbox.find_sent_message_id("<never.sent@contoso.com>") is None
    [lookup, _] = graph.seen("/SentItems/messages")
    assert lookup.query["$filter"] == "internetMessageId eq '<rec2.mailramp@contoso.com>'"
    await mailbox.close()


async def test_an_expired_token_is_refreshed_once(graph: GraphServer) -> None:
    tokens = Tokens("expired", "good")
    mailbox = provider(graph, tokens)
    await mailbox.send(
        campaign_message("rec3", "bob@example.com"), sender=SENDER, recipient="bob@example.com"
    )
    await mailbox.close()

    assert tokens.refreshes == 1
    assert [r.token for r in graph.seen("/me/sendMail")] == ["expired", "good"]
    assert len(graph.sent) == 1


async def test_concurrent_401s_share_one_refresh(graph: GraphServer) -> None:
    tokens = Tokens("expired", "good")
    mailbox = provider(graph, tokens)
    await asyncio.gather(
        *(
            mailbox.send(
                campaign_message(f"r{n}", "bob@example.com"),
                sender=SENDER,
                recipient="bob@example.com",
            )
            for n in range(8)
        )
    )
    await mailbox.close()

    assert tokens.refreshes == 1
    assert len(graph.sent) == 8


async def test_a_refused_fresh_token_means_reconnect(graph: GraphServer) -> None:
    tokens = Tokens("expired", "revoked", "never-used")
    mailbox = provider(graph, tokens)
    with pytest.raises(MailboxUnusableError, match="reconnect this mailbox"):
        await mailbox.send(
            campaign_message("rec4", "bob@example.com"), sender=SENDER, recipient="bob@example.com"
        )
    await mailbox.close()

    assert tokens.refreshes == 1
    assert graph.sent == []


async def test_retry_after_is_waited_for(graph: GraphServer) -> None:
    graph.fail_next("/me/sendMail", 429, retry_after=1)
    mailbox = provider(graph)
    await mailbox.send(
        campaign_message("rec5", "bob@example.com"), sender=SENDER, recipient="bob@example.com"
    )
    await mailbox.close()

    throttled, retried = graph.seen("/me/sendMail")
    assert retried.at - throttled.at >= 1.0
    assert len(graph.sent) == 1


async def test_a_503_with_retry_after_is_waited_for_too(graph: GraphServer) -> None:
    graph.fail_next("/me/sendMail", 503, retry_after=1)
    mailbox = provider(graph)
    await mailbox.send(
        campaign_message("rec6", "bob@example.com"), sender=SENDER, recipient="bob@example.com"
    )
    await mailbox.close()

    unavailable, retried = graph.seen("/me/sendMail")
    assert retried.at - unavailable.at >= 1.0
    assert len(graph.sent) == 1


async def test_a_long_retry_after_is_handed_back_not_slept(graph: GraphServer) -> None:
    graph.fail_next("/me/sendMail", 429, retry_after=120)
    mailbox = provider(graph, max_wait_seconds=30)
    with pytest.raises(GraphThrottledError) as raised:
        await mailbox.send(
            campaign_message("rec7", "bob@example.com"), sender=SENDER, recipient="bob@example.com"
        )
    await mailbox.close()

    assert raised.value.retry_after == 120
    assert isinstance(raised.value, TransientSendError)
    assert len(graph.seen("/me/sendMail")) == 1


async def test_at_most_four_requests_at_once(graph: GraphServer) -> None:
    graph.delay_seconds = 0.05
    mailbox = provider(graph)
    await asyncio.gather(
        *(
            mailbox.send(
                campaign_message(f"c{n}", "bob@example.com"),
                sender=SENDER,
                recipient="bob@example.com",
            )
            for n in range(20)
        )
    )
    await mailbox.close()

    assert len(graph.sent) == 20
    assert graph.max_in_flight == 4


async def test_a_refused_recipient_is_a_bounce(graph: GraphServer) -> None:
    graph.rejected_recipients.add("nobody@example.com")
    mailbox = provider(graph)
    with pytest.raises(PermanentSendError, match="ErrorInvalidRecipients"):
        await mailbox.send(
            campaign_message("rec8", "nobody@example.com"),
            sender=SENDER,
            recipient="nobody@example.com",
        )
    await mailbox.close()


async def test_server_errors_are_transient_and_a_dropped_answer_uncertain(
    graph: GraphServer,
) -> None:
    mailbox = provider(graph)
    graph.fail_next("/me/sendMail", 500)
    with pytest.raises(TransientSendError):
        await mailbox.send(
            campaign_message("rec9", "bob@example.com"), sender=SENDER, recipient="bob@example.com"
        )
    graph.fail_next("/me/sendMail", drop=True)
    with pytest.raises(UncertainSendError):
        await mailbox.send(
            campaign_message("rec9", "bob@example.com"), sender=SENDER, recipient="bob@example.com"
        )
    await mailbox.close()

    nobody_listens = GraphProvider(
        SENDER, Tokens("good"), base_url=f"http://127.0.0.1:{free_port()}/v1.0"
    )
    with pytest.raises(TransientSendError, match="cannot reach Graph"):
        await nobody_listens.send(
            campaign_message("rec9", "bob@example.com"), sender=SENDER, recipient="bob@example.com"
        )
    await nobody_listens.close()


# Reading the inbox.


def reply(to_message_id: str) -> bytes:
    return (
        "From: Bob <bob@example.com>\r\nTo: ann@contoso.com\r\nSubject: Re: Hello Bob\r\n"
        f"Message-ID: <reply1@example.com>\r\nIn-Reply-To: {to_message_id}\r\n"
        f"References: {to_message_id}\r\n\r\nSounds good.\r\n"
    ).encode()


def dsn(recipient: str, original_id: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.com\r\nTo: ann@contoso.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: ann@contoso.com\r\nTo: {recipient}\r\nMessage-ID: {original_id}\r\n\r\n"
        "--B--\r\n"
    ).encode()


def newsletter(n: int) -> bytes:
    return (
        f"From: news@example.org\r\nTo: ann@contoso.com\r\nSubject: News {n}\r\n"
        f"Message-ID: <news{n}@example.org>\r\n\r\nHi\r\n"
    ).encode()


async def test_the_inbox_is_read_page_by_page_for_replies_and_bounces(
    graph: GraphServer,
) -> None:
    graph.page_size = 2
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=30)
    sent_id = "<rec10.mailramp@contoso.com>"
    graph.deliver(newsletter(1), received_at=start)
    graph.deliver(reply(sent_id), received_at=start + timedelta(minutes=1))
    graph.deliver(newsletter(2), received_at=start + timedelta(minutes=2))
    graph.deliver(dsn("gone@example.com", sent_id), received_at=start + timedelta(minutes=3))
    graph.deliver(newsletter(3), received_at=start + timedelta(minutes=4))
    mailbox = provider(graph)
    inbox = mailbox.inbox(clock=lambda: now)

    batch = await inbox.fetch_new(uid_validity=None, last_uid=None)

    assert batch.uid_validity == GRAPH_UID_VALIDITY
    assert len(graph.seen("/mailFolders/Inbox/messages")) == 3
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
    # Only the delivery report needed its full MIME; headers told the rest apart.
    assert len(graph.seen("/$value")) == 1
    last = max(uid for uid, _ in batch.messages)
    assert last == int((start + timedelta(minutes=4)).timestamp() * 1000)

    again = await inbox.fetch_new(uid_validity=batch.uid_validity, last_uid=last)
    assert again.messages == []

    later = now + timedelta(minutes=5)
    graph.deliver(reply(sent_id).replace(b"reply1", b"reply2"), received_at=now)
    inbox = mailbox.inbox(clock=lambda: later)
    newer = await inbox.fetch_new(uid_validity=batch.uid_validity, last_uid=last)
    [(uid, raw)] = newer.messages
    assert uid == int(now.timestamp() * 1000)
    assert classify_inbound(raw).message_id == "<reply2@example.com>"
    await mailbox.close()


async def test_a_report_without_internet_headers_is_read_whole(graph: GraphServer) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    sent_id = "<rec11.mailramp@contoso.com>"
    graph.deliver(
        dsn("gone@example.com", sent_id),
        received_at=now - timedelta(minutes=10),
        headers_available=False,
    )
    mailbox = provider(graph)
    batch = await mailbox.inbox(clock=lambda: now).fetch_new(uid_validity=None, last_uid=None)
    await mailbox.close()

    [(_, raw)] = batch.messages
    assert classify_inbound(raw).kind is InboundKind.HARD_BOUNCE


async def test_reading_honours_retry_after(graph: GraphServer) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    graph.deliver(reply("<rec12.mailramp@contoso.com>"), received_at=now - timedelta(minutes=5))
    graph.fail_next("/mailFolders/Inbox/messages", 429, retry_after=1)
    mailbox = provider(graph)
    batch = await mailbox.inbox(clock=lambda: now).fetch_new(uid_validity=None, last_uid=None)
    await mailbox.close()

    throttled, retried = graph.seen("/mailFolders/Inbox/messages")
    assert retried.at - throttled.at >= 1.0
    assert len(batch.messages) == 1


async def test_a_mailbox_without_mail_read_cannot_be_polled(graph: GraphServer) -> None:
    graph.fail_next("/mailFolders/Inbox/messages", 403)
    mailbox = provider(graph)
    with pytest.raises(MailboxUnusableError):
        await mailbox.inbox().fetch_new(uid_validity=None, last_uid=None)
    await mailbox.close()


async def test_a_shared_http_client_is_left_open(graph: GraphServer) -> None:
    async with httpx.AsyncClient() as http:
        mailbox = GraphProvider(SENDER, Tokens("good"), base_url=graph.url, http=http)
        await mailbox.send(
            campaign_message("rec13", "bob@example.com"), sender=SENDER, recipient="bob@example.com"
        )
        await mailbox.close()
        assert not http.is_closed
