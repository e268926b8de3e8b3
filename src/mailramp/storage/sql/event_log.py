"""The event log on SQL: appending a unit of work's events with their numbers, and reading a
user's log by cursor.

Numbers come from the user's `event_sequences` row, updated (and so locked, on PostgreSQL)
as the last write of the unit of work: a transaction that numbers its events holds the row
until it commits, so a later one gets higher numbers and commits after it — a reader by
cursor never finds number n+1 before n. Taking it last, in user order, keeps every
transaction's locks in one order (records, suppressions, counters, then numbers).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailramp.storage.rows import to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.suppression import SqlSuppression
from mailramp.tracking.events import Tally, numbered
from mailramp.tracking.models import EmailEvent
from mailramp.tracking.repository import EventLogQuery

E = tables.events
S = tables.event_sequences


def tallied(tally: Tally) -> ColumnElement[bool]:
    """The events a counter counts (`tally`): a condition on `email_events` rows."""
    kinds = E.c.type.in_(sorted(kind.value for kind in tally.types))
    return and_(kinds, E.c.machine.is_(False)) if tally.people_only else kinds


class SqlEventLog(SqlSuppression):
    """EventLogRepository on SQL, and the append every unit of work ends with."""

    async def _append_events(
        self, connection: AsyncConnection, events: Sequence[EmailEvent]
    ) -> list[EmailEvent]:
        """Number and store `events` (the last writes of the unit of work)."""
        if not events:
            return []
        wanted = Counter(event.user_id for event in events)
        before: dict[str, int] = {}
        for user_id in sorted(wanted):
            count = wanted[user_id]
            statement = self._insert(S).values(user_id=user_id, last_seq=count)
            statement = statement.on_conflict_do_update(
                index_elements=["user_id"], set_={"last_seq": S.c.last_seq + count}
            ).returning(S.c.last_seq)
            last = int((await connection.execute(statement)).scalar_one())
            before[user_id] = last - count
        stored = numbered(events, before)
        await connection.execute(E.insert(), [to_row(event) for event in stored])
        return stored

    async def last_event_seq(self, user_id: str) -> int:
        async with self._read() as connection:
            last = await connection.scalar(select(S.c.last_seq).where(S.c.user_id == user_id))
        return int(last or 0)

    async def list_event_log(self, user_id: str, query: EventLogQuery) -> list[EmailEvent]:
        condition = and_(E.c.user_id == user_id, E.c.seq > query.after)
        if query.campaign_id is not None:
            condition = and_(condition, E.c.campaign_id == query.campaign_id)
        if query.kinds:
            condition = and_(condition, E.c.type.in_([kind.value for kind in query.kinds]))
        if query.since is not None:
            condition = and_(condition, E.c.occurred_at >= query.since)
        if query.until is not None:
            condition = and_(condition, E.c.occurred_at < query.until)
        statement = select(E).where(condition).order_by(E.c.seq).limit(query.limit)
        async with self._read() as connection:
            rows = (await connection.execute(statement)).mappings()
            return [EmailEvent.model_validate(dict(row)) for row in rows]
