"""The event log on every backend: each change of an email's state appends one event in the
unit of work that makes it, numbered 1, 2, 3… per user in the order they were recorded;
read by cursor, filtered by campaign, kind and time; numbers stay unique and gapless when
many writers record at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from mailramp.kit.ids import new_object_id
from mailramp.sending.models import Outcome, SendResult
from mailramp.sending.repository import Lease
from mailramp.storage import Store
from mailramp.tracking.models import EmailEvent, EmailTracking, EventType
from mailramp.tracking.repository import EventChange, EventLogQuery
from tests.conftest import Services, make_campaign, make_email, make_mailbox, make_user
from tests.support.clock import MONDAY_MORNING

NOW = MONDAY_MORNING
OPENED = {"opened_at": "total_opened"}


async def _campaign_of(services: Services, count: int) -> list[EmailTracking]:
    user = await make_user(services)
    campaign = await make_campaign(
        services, user, await make_mailbox(services, user), start_time=NOW - timedelta(hours=1)
    )
    return [
        make_email(campaign, f"p{n}@example.com", scheduled_at=NOW - timedelta(minutes=50))
        for n in range(count)
    ]


def _result(record: EmailTracking, outcome: Outcome, **details: object) -> SendResult:
    return SendResult(
        record.id, record.campaign_id, record.user_id, record.recipient_email, outcome,
        **details,  # type: ignore[arg-type]
    )  # fmt: skip


def _open(record: EmailTracking) -> EmailEvent:
    return EmailEvent(
        id=new_object_id(),
        record_id=record.id,
        campaign_id=record.campaign_id,
        user_id=record.user_id,
        recipient_email=record.recipient_email,
        type=EventType.OPEN,
        occurred_at=NOW,
    )


def _log(events: list[EmailEvent]) -> list[tuple[int | None, str, str | None]]:
    return [(e.seq, e.type.value, e.recipient_email) for e in events]


async def test_each_change_appends_one_numbered_event(services: Services, store: Store) -> None:
    records = await _campaign_of(services, 4)
    first, bounced, retried, _lost = records  # _lost: its worker never reports
    user_id, campaign_id = first.user_id, first.campaign_id
    lease = Lease("w", NOW, NOW + timedelta(minutes=1))
    await store.insert_tracking(records)
    await store.run_lifecycle(now=NOW)
    claimed = await store.claim_due(lease, limit=10)
    await store.start_sending(lease, {r.id: f"<{r.id}@x>" for r in claimed})
    await store.record_results(
        [
            _result(first, Outcome.SENT),
            _result(bounced, Outcome.BOUNCED, error="550 5.1.1 no such user"),
            _result(retried, Outcome.RETRY, retry_at=NOW + timedelta(minutes=5)),
        ],
        now=NOW,
    )
    await store.record_event(_open(first), EventChange(firsts=OPENED))
    # `lost` is still being sent when its worker's lease runs out; then it is sent again.
    later = NOW + timedelta(minutes=2)
    await store.run_lifecycle(now=later)
    await store.resend_uncertain(user_id, campaign_id, now=later)
    await store.cancel_pending(campaign_id, now=later)

    log = await store.list_event_log(user_id, EventLogQuery())
    assert _log(log)[:9] == [
        (1, "queued", "p0@example.com"),
        (2, "queued", "p1@example.com"),
        (3, "queued", "p2@example.com"),
        (4, "queued", "p3@example.com"),
        (5, "sent", "p0@example.com"),
        (6, "bounce", "p1@example.com"),
        (7, "open", "p0@example.com"),
        (8, "uncertain", "p3@example.com"),
        (9, "queued", "p3@example.com"),
    ]
    # The two cancelled in one statement: numbered 10 and 11, in whichever order it chose.
    assert {(e.type.value, e.recipient_email) for e in log[9:]} == {
        ("cancelled", "p2@example.com"),
        ("cancelled", "p3@example.com"),
    }
    assert [e.seq for e in log[9:]] == [10, 11]
    assert log[5].details == {"source": "send", "error": "550 5.1.1 no such user"}
    assert log[8].details == {"resend": True}
    assert {e.campaign_id for e in log} == {campaign_id}

    # Read by cursor, and filtered.
    assert [e.seq for e in await store.list_event_log(user_id, EventLogQuery(after=8))] == [
        9,
        10,
        11,
    ]
    assert [
        e.seq for e in await store.list_event_log(user_id, EventLogQuery(after=2, limit=3))
    ] == [3, 4, 5]
    queued = await store.list_event_log(user_id, EventLogQuery(kinds=(EventType.QUEUED,)))
    assert [e.seq for e in queued] == [1, 2, 3, 4, 9]
    unknown_campaign = "00000000-0000-4000-8000-000000000000"
    assert await store.list_event_log(user_id, EventLogQuery(campaign_id=unknown_campaign)) == []
    assert (
        await store.list_event_log(user_id, EventLogQuery(since=later + timedelta(seconds=1))) == []
    )
    assert len(await store.list_event_log(user_id, EventLogQuery(until=later))) == 7
    assert await store.list_event_log(new_object_id(), EventLogQuery()) == []

    # Another user's log is numbered on its own.
    others = await _campaign_of(services, 1)
    await store.insert_tracking(others)
    assert _log(await store.list_event_log(others[0].user_id, EventLogQuery())) == [
        (1, "queued", "p0@example.com")
    ]


async def test_a_stop_and_a_removed_step_leave_their_events(
    services: Services, store: Store
) -> None:
    (first,) = await _campaign_of(services, 1)
    follow_up = first.model_copy(
        update={"id": new_object_id(), "step": 2, "status": "waiting", "scheduled_at": None}
    )
    third = first.model_copy(
        update={"id": new_object_id(), "step": 3, "status": "waiting", "scheduled_at": None}
    )
    await store.insert_tracking([first, follow_up, third])
    # The person answers before the first email's turn: their three emails stop.
    reply = _open(first).model_copy(update={"type": EventType.REPLY})
    await store.record_event(reply, EventChange(firsts={}, stops_sequence=True))
    log = await store.list_event_log(first.user_id, EventLogQuery())
    assert [(e.seq, e.type.value) for e in log] == [
        (1, "queued"),
        (2, "queued"),
        (3, "queued"),
        (4, "reply"),
        (5, "stopped"),
        (6, "stopped"),
        (7, "stopped"),
    ]
    assert {e.record_id for e in log[4:]} == {first.id, follow_up.id, third.id}
    assert all(e.details == {"because": "reply"} for e in log[4:])

    # A step taken out of a campaign: its unsent emails go, a `cancelled` event stays.
    (other,) = await _campaign_of(services, 1)
    step_two = other.model_copy(
        update={"id": new_object_id(), "step": 2, "status": "waiting", "scheduled_at": None}
    )
    await store.insert_tracking([other, step_two])
    assert await store.remove_step(other.campaign_id, 2, next_step=None, now=NOW) == 1
    assert await store.get_tracking_unscoped(step_two.id) is None
    removed = await store.list_event_log(other.user_id, EventLogQuery(after=2))
    assert [(e.type.value, e.record_id, e.details) for e in removed] == [
        ("cancelled", step_two.id, {"reason": "step_removed"})
    ]


async def test_numbers_stay_unique_and_gapless_under_concurrent_writers(
    services: Services, store: Store
) -> None:
    records = await _campaign_of(services, 24)
    await store.insert_tracking(records)
    await asyncio.gather(
        *(store.record_event(_open(r), EventChange(firsts=OPENED)) for r in records)
    )
    log = await store.list_event_log(records[0].user_id, EventLogQuery(limit=1000))
    assert [e.seq for e in log] == list(range(1, 49))
    assert sorted(e.record_id for e in log if e.type is EventType.OPEN) == sorted(
        r.id for r in records
    )
