"""The Gmail provider against a Gmail API stand-in on loopback: raw sending with the
headers intact, reading back the Message-ID Gmail used, back-off on rate limits without a
time to wait for, the daily sending limit, and reading replies and bounces page by page
(what it shares with the Graph provider is in test_api_providers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mailramp.errors import MailboxUnusableError
from mailramp.providers.gmail import GMAIL_UID_VALIDITY, GmailThrottledError
from mailramp.tracking.inbound import classify_inbound
from tests.providers.apis import Api, assert_headers_intact, assert_mixed_inbox_read
from tests.support.clock import FakeClock
from tests.support.gmail_server import GmailServer
from tests.support.provider_mail import GOOGLE, dsn, newsletter, reply


async def test_sends_the_raw_message_with_every_header_intact(
    gmail_api: Api, gmail: GmailServer
) -> None:
    mailbox = gmail_api.provider()
    await gmail_api.send(mailbox, "rec1")
    await mailbox.close()

    [received] = gmail.sent
    assert_headers_intact(received, "rec1", sender=gmail_api.sender)
    [request] = gmail.seen("/messages/send")
    assert request.path == "/gmail/v1/users/me/messages/send"


async def test_the_message_id_gmail_used_is_read_back(gmail_api: Api, gmail: GmailServer) -> None:
    mailbox = gmail_api.provider()
    await gmail_api.send(mailbox, "rec2")
    kept = mailbox.last_message_id
    assert kept is not None
    assert await mailbox.sent_message_id(kept) == "<rec2.mailramp@example.net>"

    gmail.rewrite_message_ids = True
    await gmail_api.send(mailbox, "rec3")
    rewritten = mailbox.last_message_id
    assert rewritten is not None and rewritten != kept
    used = await mailbox.sent_message_id(rewritten)
    assert used is not None and used.endswith("@mail.gmail.com>")
    assert used == gmail.sent[-1]["Message-ID"]
    assert await mailbox.sent_message_id("ffffffffffffffff") is None
    lookup = gmail.seen("/messages/", "GET")[0]
    assert lookup.query == {"format": ["metadata"], "metadataHeaders": ["Message-ID"]}
    await mailbox.close()


async def test_a_200_whose_body_is_not_json_is_still_a_send(
    gmail_api: Api, gmail: GmailServer
) -> None:
    """Gmail took the message: an unreadable answer must not make the worker send it again."""
    gmail.garble_send_answers = 1
    mailbox = gmail_api.provider()
    await gmail_api.send(mailbox, "rec9")
    await mailbox.close()
    assert mailbox.last_message_id is None  # the Message-ID stays ours
    assert [m["Message-ID"] for m in gmail.sent] == ["<rec9.mailramp@example.net>"]


async def test_without_retry_after_the_wait_grows(gmail_api: Api, gmail: GmailServer) -> None:
    gmail.fail_next("/messages/send", 403, reason="rateLimitExceeded", count=2)
    mailbox = gmail_api.provider(backoff_seconds=0.3)
    await gmail_api.send(mailbox, "rec7")
    await mailbox.close()

    first, second, third = gmail.seen("/messages/send")
    assert second.at - first.at >= 0.3
    assert third.at - second.at >= 0.6
    assert len(gmail.sent) == 1


async def test_throttling_that_does_not_stop_is_handed_back(
    gmail_api: Api, gmail: GmailServer
) -> None:
    gmail.fail_next("/messages/send", 429, count=10)
    mailbox = gmail_api.provider(backoff_seconds=0.05)
    with pytest.raises(GmailThrottledError):
        await gmail_api.send(mailbox, "rec8")
    await mailbox.close()
    assert len(gmail.seen("/messages/send")) == 4
    assert gmail.sent == []


@pytest.mark.parametrize("status", [429, 403])
async def test_the_sending_limit_is_handed_back_with_the_time_gmail_named(
    gmail_api: Api, gmail: GmailServer, status: int
) -> None:
    clock = FakeClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    lifts_at = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    gmail.clock = clock
    gmail.limit_sending(until=lifts_at, status=status)
    mailbox = gmail_api.provider(clock=clock)

    with pytest.raises(GmailThrottledError) as raised:
        await gmail_api.send(mailbox, "rec16")
    assert "Retry after 2026-11-25T18:00:00.000Z" in raised.value.message
    assert raised.value.retry_at == lifts_at
    assert raised.value.retry_after == 6 * 3600
    assert len(gmail.seen("/messages/send")) == 1  # handed back at once, not retried

    # Until then the mailbox sends nothing, without asking Gmail again...
    clock.advance(hours=1)
    with pytest.raises(GmailThrottledError) as again:
        await gmail_api.send(mailbox, "rec17")
    assert (again.value.retry_at, again.value.retry_after) == (lifts_at, 5 * 3600)
    assert len(gmail.seen("/messages/send")) == 1
    # ...but its inbox can still be read.
    gmail.deliver(reply("<rec16.mailramp@example.net>", to=gmail_api.sender), received_at=clock())
    clock.advance(minutes=5)
    batch = await mailbox.inbox(clock=clock).fetch_new(uid_validity=None, last_uid=None)
    assert len(batch.messages) == 1

    clock.now = lifts_at
    await gmail_api.send(mailbox, "rec17")
    await mailbox.close()
    assert [str(m["Message-ID"]) for m in gmail.sent] == ["<rec17.mailramp@example.net>"]


@pytest.mark.parametrize(
    "named", ["2001-01-01T00:00:00.000Z", "2026-13-45T99:00:00.000Z", "tomorrow"]
)
async def test_a_named_time_in_the_past_or_unreadable_falls_back_to_the_back_off(
    gmail_api: Api, gmail: GmailServer, named: str
) -> None:
    gmail.fail_next(
        "/messages/send",
        429,
        message=f"User-rate limit exceeded.  Retry after {named} (Mail sending)",
        count=10,
    )
    mailbox = gmail_api.provider(backoff_seconds=0.0625)
    with pytest.raises(GmailThrottledError) as raised:
        await gmail_api.send(mailbox, "rec18")
    await mailbox.close()

    assert len(gmail.seen("/messages/send")) == 4
    assert raised.value.retry_at is None
    assert raised.value.retry_after == 0.5  # the fourth back-off: 0.0625 * 2**3
    assert gmail.sent == []


async def test_a_sending_limit_that_lifts_within_the_wait_is_waited_out(
    gmail_api: Api, gmail: GmailServer
) -> None:
    # A back-off of its own would be longer than the provider waits: only the named time
    # lets this send go through.
    gmail.limit_sending(until=datetime.now(UTC) + timedelta(seconds=1))
    mailbox = gmail_api.provider(max_wait_seconds=5, backoff_seconds=10)
    await gmail_api.send(mailbox, "rec19")
    await mailbox.close()

    assert len(gmail.seen("/messages/send")) == 2
    assert [str(m["Message-ID"]) for m in gmail.sent] == ["<rec19.mailramp@example.net>"]


async def test_a_mailbox_without_the_send_scope_is_unusable(
    gmail_api: Api, gmail: GmailServer
) -> None:
    gmail.fail_next("/messages/send", 403, reason="insufficientPermissions")
    mailbox = gmail_api.provider()
    with pytest.raises(MailboxUnusableError, match="insufficientPermissions"):
        await gmail_api.send(mailbox, "rec10")
    await mailbox.close()
    assert len(gmail.seen("/messages/send")) == 1


# Reading the inbox.


async def test_the_inbox_is_read_page_by_page_for_replies_and_bounces(
    gmail_api: Api, gmail: GmailServer
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=30)
    mailbox = gmail_api.provider()
    gmail.rewrite_message_ids = True
    await gmail_api.send(mailbox, "rec12")
    assert mailbox.last_message_id is not None
    sent_id = await mailbox.sent_message_id(mailbox.last_message_id)
    assert sent_id is not None
    gmail_api.deliver_mixed_inbox(
        sent_id, start=start, last_offset=timedelta(minutes=4, milliseconds=250)
    )
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
    assert_mixed_inbox_read(batch, sent_id)
    # Each message is read whole, once, for the classifier (as IMAP reads it).
    formats = [r.query["format"][0] for r in gmail.seen("/messages/", "GET")]
    assert formats.count("raw") == len(batch.messages) == 5
    assert formats.count("metadata") == 1  # the Message-ID lookup after sending, no more
    last = max(uid for uid, _ in batch.messages)
    assert last == int((start + timedelta(minutes=4, milliseconds=250)).timestamp() * 1000)

    await gmail_api.later_polls_read_only_what_is_new(mailbox, inbox, batch, sent_id, now=now)
    await mailbox.close()


async def test_messages_inside_the_settle_window_wait_for_the_next_poll(
    gmail_api: Api, gmail: GmailServer
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    gmail.deliver(
        reply("<rec13.mailramp@example.net>", to=gmail_api.sender),
        received_at=now - timedelta(seconds=10),
    )
    mailbox = gmail_api.provider()
    batch = await mailbox.inbox(clock=lambda: now).fetch_new(uid_validity=None, last_uid=None)
    assert batch.messages == []
    later = now + timedelta(minutes=2)
    batch = await mailbox.inbox(clock=lambda: later).fetch_new(uid_validity=None, last_uid=None)
    await mailbox.close()
    assert len(batch.messages) == 1


async def test_the_stand_in_finds_bounces_by_sender(gmail_api: Api, gmail: GmailServer) -> None:
    now = datetime.now(UTC)
    to = gmail_api.sender
    gmail.deliver(newsletter(1, to=to), received_at=now - timedelta(minutes=3))
    bounce = gmail.deliver(
        dsn("gone@example.com", "<x@y>", to=to, reporter=GOOGLE),
        received_at=now - timedelta(minutes=2),
    )
    async with httpx.AsyncClient() as http:
        answer = await http.get(
            f"{gmail.url}/gmail/v1/users/me/messages",
            params={"q": f"from:mailer-daemon after:{int(now.timestamp()) - 600}"},
            headers={"Authorization": "Bearer good"},
        )
    assert answer.json()["messages"] == [{"id": bounce.id, "threadId": bounce.id}]


async def test_a_full_inbox_is_read_oldest_first_over_several_polls(
    gmail_api: Api, gmail: GmailServer
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for n in range(5):
        gmail.deliver(
            newsletter(n, to=gmail_api.sender), received_at=now - timedelta(minutes=10 - n)
        )
    mailbox = gmail_api.provider()
    inbox = mailbox.inbox(clock=lambda: now, max_messages=2, page_size=2)
    read: list[str | None] = []
    position: int | None = None
    for _ in range(6):
        batch = await inbox.fetch_new(uid_validity=GMAIL_UID_VALIDITY, last_uid=position)
        read += [classify_inbound(raw).message_id for _, raw in batch.messages]
        position = max([uid for uid, _ in batch.messages], default=position)
    await mailbox.close()

    assert read == [f"<news{n}@example.org>" for n in range(5)]
