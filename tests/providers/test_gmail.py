"""The Gmail provider against a Gmail API stand-in on loopback: raw sending with the headers
intact, reading back the Message-ID Gmail used, token refresh on 401, back-off on 429 and
rateLimitExceeded, four requests at a time, and reading replies and bounces page by page."""

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
from mailramp.providers.gmail import GMAIL_UID_VALIDITY, GmailProvider, GmailThrottledError
from mailramp.tracking.inbound import InboundKind, classify_inbound
from tests.support.gmail_server import GmailServer
from tests.support.postgres import free_port

SENDER = "ann@example.net"
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
def gmail() -> Iterator[GmailServer]:
    server = GmailServer(tokens={"good"}).start()
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
    message["Message-ID"] = f"<{record_id}.mailramp@example.net>"
    message["In-Reply-To"] = "<earlier.mailramp@example.net>"
    message["List-Unsubscribe"] = UNSUBSCRIBE
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return message


def provider(
    gmail: GmailServer,
    tokens: Tokens | None = None,
    *,
    max_wait_seconds: float = 30,
    backoff_seconds: float = 0.3,
) -> GmailProvider:
    return GmailProvider(
        SENDER,
        tokens or Tokens("good"),
        base_url=gmail.url,
        max_wait_seconds=max_wait_seconds,
        backoff_seconds=backoff_seconds,
    )


async def send(mailbox: GmailProvider, record_id: str, recipient: str = "bob@example.com") -> None:
    await mailbox.send(campaign_message(record_id, recipient), sender=SENDER, recipient=recipient)


async def test_sends_the_raw_message_with_every_header_intact(gmail: GmailServer) -> None:
    mailbox = provider(gmail)
    await send(mailbox, "rec1")
    await mailbox.close()

    [received] = gmail.sent
    assert received["Message-ID"] == "<rec1.mailramp@example.net>"
    assert received["In-Reply-To"] == "<earlier.mailramp@example.net>"
    assert received["List-Unsubscribe"] == UNSUBSCRIBE
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received["To"] == "bob@example.com"
    html = received.get_body(("html",))
    assert html is not None and "Hi Bob" in html.get_content()
    [request] = gmail.seen("/messages/send")
    assert request.path == "/gmail/v1/users/me/messages/send"


async def test_the_message_id_gmail_used_is_read_back(gmail: GmailServer) -> None:
    mailbox = provider(gmail)
    await send(mailbox, "rec2")
    kept = mailbox.last_message_id
    assert kept is not None
    assert await mailbox.sent_message_id(kept) == "<rec2.mailramp@example.net>"

    gmail.rewrite_message_ids = True
    await send(mailbox, "rec3")
    rewritten = mailbox.last_message_id
    assert rewritten is not None and rewritten != kept
    used = await mailbox.sent_message_id(rewritten)
    assert used is not None and used.endswith("@mail.gmail.com>")
    assert used == gmail.sent[-1]["Message-ID"]
    assert await mailbox.sent_message_id("ffffffffffffffff") is None
    lookup = gmail.seen("/messages/", "GET")[0]
    assert lookup.query == {"format": ["metadata"], "metadataHeaders": ["Message-ID"]}
    await mailbox.close()


async def test_an_expired_token_is_refreshed_once(gmail: GmailServer) -> None:
    tokens = Tokens("expired", "good")
    mailbox = provider(gmail, tokens)
    await send(mailbox, "rec4")
    await mailbox.close()

    assert tokens.refreshes == 1
    assert [r.token for r in gmail.seen("/messages/send")] == ["expired", "good"]
    assert len(gmail.sent) == 1


async def test_concurrent_401s_share_one_refresh(gmail: GmailServer) -> None:
    tokens = Tokens("expired", "good")
    mailbox = provider(gmail, tokens)
    await asyncio.gather(*(send(mailbox, f"r{n}") for n in range(8)))
    await mailbox.close()

    assert tokens.refreshes == 1
    assert len(gmail.sent) == 8


async def test_a_refused_fresh_token_means_reconnect(gmail: GmailServer) -> None:
    tokens = Tokens("expired", "revoked", "never-used")
    mailbox = provider(gmail, tokens)
    with pytest.raises(MailboxUnusableError, match="reconnect this mailbox"):
        await send(mailbox, "rec5")
    await mailbox.close()

    assert tokens.refreshes == 1
    assert gmail.sent == []


@pytest.mark.parametrize(
    ("status", "reason"),
    [(429, "rateLimitExceeded"), (403, "rateLimitExceeded"), (403, "userRateLimitExceeded")],
)
async def test_retry_after_is_waited_for(gmail: GmailServer, status: int, reason: str) -> None:
    gmail.fail_next("/messages/send", status, reason=reason, retry_after=1)
    mailbox = provider(gmail)
    await send(mailbox, "rec6")
    await mailbox.close()

    throttled, retried = gmail.seen("/messages/send")
    assert retried.at - throttled.at >= 1.0
    assert len(gmail.sent) == 1


async def test_without_retry_after_the_wait_grows(gmail: GmailServer) -> None:
    gmail.fail_next("/messages/send", 403, reason="rateLimitExceeded", count=2)
    mailbox = provider(gmail, backoff_seconds=0.3)
    await send(mailbox, "rec7")
    await mailbox.close()

    first, second, third = gmail.seen("/messages/send")
    assert second.at - first.at >= 0.3
    assert third.at - second.at >= 0.6
    assert len(gmail.sent) == 1


async def test_throttling_that_does_not_stop_is_handed_back(gmail: GmailServer) -> None:
    gmail.fail_next("/messages/send", 429, count=10)
    mailbox = provider(gmail, backoff_seconds=0.05)
    with pytest.raises(GmailThrottledError):
        await send(mailbox, "rec8")
    assert len(gmail.seen("/messages/send")) == 4

    gmail.faults.clear()
    gmail.fail_next("/messages/send", 429, retry_after=120)
    with pytest.raises(GmailThrottledError) as raised:
        await send(mailbox, "rec8")
    await mailbox.close()
    assert raised.value.retry_after == 120
    assert isinstance(raised.value, TransientSendError)
    assert gmail.sent == []


async def test_at_most_four_requests_at_once(gmail: GmailServer) -> None:
    gmail.delay_seconds = 0.05
    mailbox = provider(gmail)
    await asyncio.gather(*(send(mailbox, f"c{n}") for n in range(20)))
    await mailbox.close()

    assert len(gmail.sent) == 20
    assert gmail.max_in_flight == 4


async def test_an_invalid_recipient_is_a_bounce(gmail: GmailServer) -> None:
    gmail.invalid_recipients.add("nobody@example.com")
    mailbox = provider(gmail)
    with pytest.raises(PermanentSendError, match="Invalid To header"):
        await send(mailbox, "rec9", "nobody@example.com")
    await mailbox.close()


async def test_a_mailbox_without_the_send_scope_is_unusable(gmail: GmailServer) -> None:
    gmail.fail_next("/messages/send", 403, reason="insufficientPermissions")
    mailbox = provider(gmail)
    with pytest.raises(MailboxUnusableError, match="insufficientPermissions"):
        await send(mailbox, "rec10")
    await mailbox.close()
    assert len(gmail.seen("/messages/send")) == 1


async def test_server_errors_are_transient_and_a_dropped_answer_uncertain(
    gmail: GmailServer,
) -> None:
    mailbox = provider(gmail)
    gmail.fail_next("/messages/send", 500, reason="backendError")
    with pytest.raises(TransientSendError):
        await send(mailbox, "rec11")
    gmail.fail_next("/messages/send", drop=True)
    with pytest.raises(UncertainSendError):
        await send(mailbox, "rec11")
    await mailbox.close()

    nobody_listens = GmailProvider(
        SENDER, Tokens("good"), base_url=f"http://127.0.0.1:{free_port()}"
    )
    with pytest.raises(TransientSendError, match="cannot reach Gmail"):
        await send(nobody_listens, "rec11")
    await nobody_listens.close()


# Reading the inbox.


def reply(to_message_id: str, own: str = "reply1") -> bytes:
    return (
        f"From: Bob <bob@example.com>\r\nTo: {SENDER}\r\nSubject: Re: Hello Bob\r\n"
        f"Message-ID: <{own}@example.com>\r\nIn-Reply-To: {to_message_id}\r\n"
        f"References: {to_message_id}\r\n\r\nSounds good.\r\n"
    ).encode()


def dsn(recipient: str, original_id: str) -> bytes:
    return (
        f"From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\nTo: {SENDER}\r\n"
        "Subject: Delivery Status Notification (Failure)\r\n"
        "Message-ID: <dsn1@mx.google.com>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nAddress not found.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; googlemail.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {SENDER}\r\nTo: {recipient}\r\nMessage-ID: {original_id}\r\n\r\n"
        "--B--\r\n"
    ).encode()


def newsletter(n: int) -> bytes:
    return (
        f"From: news@example.org\r\nTo: {SENDER}\r\nSubject: News {n}\r\n"
        f"Message-ID: <news{n}@example.org>\r\n\r\nHi\r\n"
    ).encode()


async def test_the_inbox_is_read_page_by_page_for_replies_and_bounces(
    gmail: GmailServer,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=30)
    mailbox = provider(gmail)
    gmail.rewrite_message_ids = True
    await send(mailbox, "rec12")
    assert mailbox.last_message_id is not None
    sent_id = await mailbox.sent_message_id(mailbox.last_message_id)
    assert sent_id is not None
    gmail.deliver(newsletter(1), received_at=start)
    gmail.deliver(reply(sent_id), received_at=start + timedelta(minutes=1))
    gmail.deliver(newsletter(2), received_at=start + timedelta(minutes=2))
    gmail.deliver(dsn("gone@example.com", sent_id), received_at=start + timedelta(minutes=3))
    gmail.deliver(newsletter(3), received_at=start + timedelta(minutes=4, milliseconds=250))
    inbox = mailbox.inbox(clock=lambda: now, page_size=2)

    batch = await inbox.fetch_new(uid_validity=None, last_uid=None)

    assert batch.uid_validity == GMAIL_UID_VALIDITY
    lists = [r for r in gmail.seen("/messages", "GET") if r.path.endswith("/messages")]
    assert len(lists) == 3
    assert [r.query.get("pageToken") for r in lists] == [
        None,
        ["00000000000000000002"],
        ["00000000000000000004"],
    ]
    assert all("in:inbox" in r.query["q"][0] for r in lists)
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
    # Only the delivery report needed its whole raw message; metadata told the rest apart.
    formats = [r.query["format"][0] for r in gmail.seen("/messages/", "GET")]
    assert formats.count("raw") == 1
    last = max(uid for uid, _ in batch.messages)
    assert last == int((start + timedelta(minutes=4, milliseconds=250)).timestamp() * 1000)

    again = await inbox.fetch_new(uid_validity=batch.uid_validity, last_uid=last)
    assert again.messages == []

    later = now + timedelta(minutes=5)
    gmail.deliver(reply(sent_id, "reply2"), received_at=now)
    inbox = mailbox.inbox(clock=lambda: later)
    newer = await inbox.fetch_new(uid_validity=batch.uid_validity, last_uid=last)
    [(uid, raw)] = newer.messages
    assert uid == int(now.timestamp() * 1000)
    assert classify_inbound(raw).message_id == "<reply2@example.com>"
    await mailbox.close()


async def test_messages_inside_the_settle_window_wait_for_the_next_poll(
    gmail: GmailServer,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    gmail.deliver(reply("<rec13.mailramp@example.net>"), received_at=now - timedelta(seconds=10))
    mailbox = provider(gmail)
    batch = await mailbox.inbox(clock=lambda: now).fetch_new(uid_validity=None, last_uid=None)
    assert batch.messages == []
    later = now + timedelta(minutes=2)
    batch = await mailbox.inbox(clock=lambda: later).fetch_new(uid_validity=None, last_uid=None)
    await mailbox.close()
    assert len(batch.messages) == 1


async def test_reading_backs_off_on_rate_limits(gmail: GmailServer) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    gmail.deliver(reply("<rec14.mailramp@example.net>"), received_at=now - timedelta(minutes=5))
    gmail.fail_next("/users/me/messages", 429, retry_after=1)
    mailbox = provider(gmail)
    batch = await mailbox.inbox(clock=lambda: now).fetch_new(uid_validity=None, last_uid=None)
    await mailbox.close()

    throttled, retried = gmail.seen("/messages", "GET")[:2]
    assert retried.at - throttled.at >= 1.0
    assert len(batch.messages) == 1


async def test_a_mailbox_without_a_read_scope_cannot_be_polled(gmail: GmailServer) -> None:
    gmail.fail_next("/users/me/messages", 403, reason="insufficientPermissions")
    mailbox = provider(gmail)
    with pytest.raises(MailboxUnusableError):
        await mailbox.inbox().fetch_new(uid_validity=None, last_uid=None)
    await mailbox.close()


async def test_the_stand_in_finds_bounces_by_sender(gmail: GmailServer) -> None:
    now = datetime.now(UTC)
    gmail.deliver(newsletter(1), received_at=now - timedelta(minutes=3))
    bounce = gmail.deliver(dsn("gone@example.com", "<x@y>"), received_at=now - timedelta(minutes=2))
    async with httpx.AsyncClient() as http:
        answer = await http.get(
            f"{gmail.url}/gmail/v1/users/me/messages",
            params={"q": f"from:mailer-daemon after:{int(now.timestamp()) - 600}"},
            headers={"Authorization": "Bearer good"},
        )
    assert answer.json()["messages"] == [{"id": bounce.id, "threadId": bounce.id}]


async def test_a_shared_http_client_is_left_open(gmail: GmailServer) -> None:
    async with httpx.AsyncClient() as http:
        mailbox = GmailProvider(SENDER, Tokens("good"), base_url=gmail.url, http=http)
        await send(mailbox, "rec15")
        await mailbox.close()
        assert not http.is_closed


async def test_a_full_inbox_is_read_oldest_first_over_several_polls(gmail: GmailServer) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for n in range(5):
        gmail.deliver(newsletter(n), received_at=now - timedelta(minutes=10 - n))
    mailbox = provider(gmail)
    inbox = mailbox.inbox(clock=lambda: now, max_messages=2, page_size=2)
    read: list[str | None] = []
    position: int | None = None
    for _ in range(6):
        batch = await inbox.fetch_new(uid_validity=GMAIL_UID_VALIDITY, last_uid=position)
        read += [classify_inbound(raw).message_id for _, raw in batch.messages]
        position = max([uid for uid, _ in batch.messages], default=position)
    await mailbox.close()

    assert read == [f"<news{n}@example.org>" for n in range(5)]
