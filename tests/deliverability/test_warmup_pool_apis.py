"""The warm-up pool between an Outlook mailbox (Graph) and a Gmail mailbox (Gmail API), each
on its stand-in on loopback, mail relayed from one to the other; each files every third
message it receives in spam (Gmail) or Junk Email (Exchange). Over three weekdays each
sends as its ramp says, every warm-up email is found through the API, the ones in spam are
moved to the inbox, read and flagged / important, and replies go back in the same
thread."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest

from mailramp.deliverability.models import Placement, WarmupEmail, WarmupStatus
from mailramp.deliverability.pool import WarmupPool
from mailramp.kit.ids import new_object_id
from mailramp.kit.marked_ids import WarmupMarker, new_key
from mailramp.mailboxes.ramp import day_key
from mailramp.providers.registry import DefaultInboxes, DefaultProviders
from mailramp.storage.sql import SqlStore, tables
from tests.conftest import make_user, services_on
from tests.support.clock import MONDAY_MORNING, FakeClock
from tests.support.gmail_server import GmailServer
from tests.support.graph_server import GraphServer
from tests.support.provider_mail import Tokens

OUTLOOK = "ann@contoso.example"
GMAIL = "ben@gmail.example"
DAYS = 3
EXPECTED_VOLUMES = [2, 4, 6]


class Filter:
    """Every third message relayed is spam; the Message-IDs it filed there."""

    def __init__(self) -> None:
        self.relayed = 0
        self.filed: set[str] = set()

    def __call__(self, raw: bytes) -> bool:
        self.relayed += 1
        if self.relayed % 3:
            return False
        self.filed.add(str(message_from_bytes(raw, policy=policy.default)["Message-ID"]))
        return True


@pytest.fixture
def spam() -> Filter:
    return Filter()


@pytest.fixture
def apis(clock: FakeClock, spam: Filter) -> Iterator[tuple[GraphServer, GmailServer]]:
    graph = GraphServer(tokens={"good"}).start()
    gmail = GmailServer(tokens={"good"}).start()
    graph.relay = lambda raw: gmail.deliver(
        raw,
        received_at=clock(),
        labels=("SPAM", "UNREAD") if spam(raw) else ("INBOX", "UNREAD"),
    )
    gmail.relay = lambda raw: graph.deliver(
        raw, received_at=clock(), folder="junkemail" if spam(raw) else "inbox"
    )
    try:
        yield graph, gmail
    finally:
        graph.stop()
        gmail.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY_MORNING)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_warm_up_between_an_outlook_and_a_gmail_mailbox(
    store: SqlStore,
    secret_box: Any,
    clock: FakeClock,
    spam: Filter,
    apis: tuple[GraphServer, GmailServer],
) -> None:
    graph, gmail = apis
    services = services_on(store, secret_box, clock)
    members = []
    for address, provider in ((OUTLOOK, "outlook"), (GMAIL, "gmail")):
        user = await make_user(services)
        mailbox = await services.mailboxes.create_mailbox(
            user.user_id, email=address, provider=provider, access_token="stored", daily_limit=50
        )
        await services.store.update_mailbox(user.user_id, mailbox.id, {"warmup_enabled": True})
        members.append(mailbox)
    adapters: dict[str, Any] = {
        "tokens": lambda mailbox, credentials: Tokens("good"),
        "graph_url": graph.url,
        "gmail_url": gmail.url,
        "clock": clock,
    }
    pool = WarmupPool(
        store,
        services.mailboxes,
        DefaultProviders(**adapters),
        DefaultInboxes(**adapters),
        WarmupMarker(new_key()),
        clock=clock,
    )

    for day in range(DAYS):
        clock.now = MONDAY_MORNING + timedelta(days=day)
        while clock.now < MONDAY_MORNING + timedelta(days=day, hours=9):
            await pool.run_once()
            clock.advance(minutes=30)
        await services.deliverability.roll_up()  # the day's history: the ramp's next step
    clock.now = MONDAY_MORNING + timedelta(days=DAYS - 1, hours=10)
    await pool.run_once()

    async with store.engine.begin() as connection:
        rows = (await connection.execute(tables.warmup_emails.select())).mappings().all()
    sent = [dict(row) for row in rows if row["status"] == WarmupStatus.SENT.value]
    openings = Counter((e["mailbox_id"], day_key(e["sent_at"])) for e in sent if e["step"] == 0)
    for member in members:
        volumes = [
            openings[member.id, day_key(MONDAY_MORNING + timedelta(days=d))] for d in range(DAYS)
        ]
        assert volumes == EXPECTED_VOLUMES, (member.email, volumes)
    assert [e["subject"] for e in sent if e["found_at"] is None] == []
    for email in sent:
        junk = email["message_id"] in spam.filed
        assert email["placement"] == (Placement.SPAM if junk else Placement.INBOX).value
        assert (email["rescued_at"] is not None) == junk
    assert len(spam.filed) == len(sent) // 3
    # What the providers hold: nothing left in spam, everything read and flagged.
    assert len(graph.inbox) == sum(1 for e in sent if e["to_mailbox_id"] == members[0].id)
    assert {(m.folder, m.is_read, m.flag_status) for m in graph.inbox} == {
        ("inbox", True, "flagged")
    }
    received = [m for m in gmail.messages if "SENT" not in m.labels]
    assert len(received) == sum(1 for e in sent if e["to_mailbox_id"] == members[1].id)
    assert {frozenset(m.labels) for m in received} == {frozenset({"INBOX", "IMPORTANT"})}
    # Replies went out through the other API, in the thread of what they answer.
    replies = [e for e in sent if e["step"] > 0]
    assert replies
    by_message_id = {e["message_id"]: e for e in sent}
    for reply in replies:
        assert by_message_id[reply["in_reply_to"]]["thread_id"] == reply["thread_id"]
    arrived = {str(m.parsed["Message-ID"]): m.parsed for m in [*graph.inbox, *received]}
    for reply in replies:
        message = arrived[reply["message_id"]]
        assert message["In-Reply-To"] == reply["in_reply_to"]
        assert reply["in_reply_to"] in str(message["References"])
        assert str(message["Subject"]).startswith("Re: ")

    # A mailbox that leaves the pool sends nothing more, not even what it had planned.
    outlook = members[0]
    await services.mailboxes.update_mailbox(outlook.user_id, outlook.id, warmup_enabled=False)
    left = WarmupEmail.model_validate(
        {
            "_id": new_object_id(),
            "user_id": outlook.user_id,
            "mailbox_id": outlook.id,
            "to_mailbox_id": members[1].id,
            "to_user_id": members[1].user_id,
            "thread_id": new_object_id(),
            "message_id": "<planned-before-leaving@contoso.example>",
            "subject": "Friday",
            "body": "See you then.",
            "planned_at": clock(),
            "created_at": clock(),
            "updated_at": clock(),
        }
    )
    await store.insert_warmup_emails([left])
    sent_before = len(graph.sent)
    await pool.run_once()
    stored = await store.get_warmup_email(left.id)
    assert stored is not None and stored.status is WarmupStatus.FAILED
    assert stored.last_error == "the sending mailbox left the warm-up pool"
    assert len(graph.sent) == sent_before
