"""The Graph provider against a Graph stand-in on loopback: MIME sending with the headers
intact, finding a sent message, and reading replies and bounces from the inbox page by
page (what it shares with the Gmail provider is in test_api_providers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailramp.providers.graph import GRAPH_UID_VALIDITY
from mailramp.tracking.inbound import InboundKind, classify_inbound
from tests.providers.apis import Api, assert_headers_intact, assert_mixed_inbox_read
from tests.support.graph_server import GraphServer
from tests.support.provider_mail import dsn


async def test_sends_mime_with_every_header_intact(graph_api: Api, graph: GraphServer) -> None:
    mailbox = graph_api.provider()
    await graph_api.send(mailbox, "rec1")
    await mailbox.close()

    [received] = graph.sent
    assert_headers_intact(received, "rec1", sender=graph_api.sender)


async def test_finds_the_sent_message_by_its_internet_message_id(
    graph_api: Api, graph: GraphServer
) -> None:
    mailbox = graph_api.provider()
    await graph_api.send(mailbox, "rec2")

    assert await mailbox.find_sent_message_id("<rec2.mailramp@contoso.com>") == (
        "<rec2.mailramp@contoso.com>"
    )
    assert await mailbox.find_sent_message_id("<never.sent@contoso.com>") is None
    [lookup, _] = graph.seen("/SentItems/messages")
    assert lookup.query["$filter"] == "internetMessageId eq '<rec2.mailramp@contoso.com>'"
    await mailbox.close()


async def test_the_inbox_is_read_page_by_page_for_replies_and_bounces(
    graph_api: Api, graph: GraphServer
) -> None:
    graph.page_size = 2
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=30)
    sent_id = "<rec10.mailramp@contoso.com>"
    graph_api.deliver_mixed_inbox(sent_id, start=start, last_offset=timedelta(minutes=4))
    mailbox = graph_api.provider()
    inbox = mailbox.inbox(clock=lambda: now)

    batch = await inbox.fetch_new(uid_validity=None, last_uid=None)

    assert batch.uid_validity == GRAPH_UID_VALIDITY
    assert len(graph.seen("/mailFolders/Inbox/messages")) == 3
    assert_mixed_inbox_read(batch, sent_id)
    # Each message is read whole, once, for the classifier (as IMAP reads it).
    assert len(graph.seen("/$value")) == len(batch.messages) == 5
    last = max(uid for uid, _ in batch.messages)
    assert last == int((start + timedelta(minutes=4)).timestamp() * 1000)

    await graph_api.later_polls_read_only_what_is_new(mailbox, inbox, batch, sent_id, now=now)
    await mailbox.close()


async def test_a_report_without_internet_headers_is_read_whole(
    graph_api: Api, graph: GraphServer
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    sent_id = "<rec11.mailramp@contoso.com>"
    graph.deliver(
        dsn("gone@example.com", sent_id, to=graph_api.sender),
        received_at=now - timedelta(minutes=10),
        headers_available=False,
    )
    mailbox = graph_api.provider()
    batch = await mailbox.inbox(clock=lambda: now).fetch_new(uid_validity=None, last_uid=None)
    await mailbox.close()

    [(_, raw)] = batch.messages
    assert classify_inbound(raw).kind is InboundKind.HARD_BOUNCE
