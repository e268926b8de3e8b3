"""Reading the event log by cursor: a reader stops before a missing number (another writer
is still storing it) and passes it only once the event after it is older than the settling
time by the wall clock its id carries (the number was lost to a crash)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bson import ObjectId

from mailramp.kit.ids import new_object_id, object_id_time
from mailramp.tracking.models import EmailEvent, EventType
from mailramp.tracking.service import EVENT_SETTLE, readable

WALL = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _event(seq: int, *, made: datetime) -> EmailEvent:
    return EmailEvent(
        id=str(ObjectId.from_datetime(made)),
        seq=seq,
        record_id=new_object_id(),
        campaign_id="4a4f17e4-718a-4541-93ff-bfe1e2fd69ed",
        user_id=new_object_id(),
        type=EventType.OPEN,
        occurred_at=made,
    )


def test_an_id_says_when_it_was_made() -> None:
    made = datetime(2026, 12, 6, 11, 59, 30, tzinfo=UTC)
    assert object_id_time(str(ObjectId.from_datetime(made))) == made


def test_a_reader_waits_at_a_fresh_gap_and_passes_an_old_one() -> None:
    fresh = WALL - timedelta(seconds=1)
    events = [_event(4, made=fresh), _event(5, made=fresh), _event(7, made=fresh)]
    taken = readable(events, 3, wall=WALL, settle=EVENT_SETTLE)
    assert [e.seq for e in taken] == [4, 5]  # 6 may still come: wait for it
    assert readable(events, 2, wall=WALL, settle=EVENT_SETTLE) == []  # 3 may still come

    old = WALL - EVENT_SETTLE - timedelta(seconds=1)
    events = [_event(4, made=old), _event(6, made=old), _event(8, made=fresh)]
    taken = readable(events, 3, wall=WALL, settle=EVENT_SETTLE)
    assert [e.seq for e in taken] == [4, 6]  # 5 never came; 7 still may
