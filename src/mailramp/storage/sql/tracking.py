"""Tracking records and the event log on SQL."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailramp.kit.types import Page
from mailramp.storage.rows import to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.people import SqlPeople
from mailramp.tracking.classify import FETCHES
from mailramp.tracking.events import (
    COUNTED_ON_FIRST_EMAIL,
    check_firsts,
    queued,
    sequence_stopped,
)
from mailramp.tracking.models import (
    EVENT_TIMESTAMPS,
    SETTLING,
    CampaignRecipient,
    ConversationMessage,
    EmailEvent,
    EmailTracking,
    EventType,
    UnmatchedInbound,
)
from mailramp.tracking.repository import (
    EventChange,
    RecipientQuery,
    SettledEvent,
    UnsettledEmail,
)

T = tables.tracking


E = tables.events


def _utc(moment: datetime | str) -> datetime:
    """A moment as SQLite's aggregate returns it (text, or naive) or PostgreSQL's, in UTC."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class SqlTracking(SqlPeople):
    """TrackingRepository on SQL."""

    async def insert_tracking(self, records: Sequence[EmailTracking]) -> int:
        if not records:
            return 0
        rows = [to_row(record) for record in records]
        people: dict[tuple[str, str], CampaignRecipient] = {}
        for record in records:
            person = CampaignRecipient.of(record)
            known = people.setdefault((record.campaign_id, record.recipient_email), person)
            for name in EVENT_TIMESTAMPS:  # a person's first is their emails' earliest
                mine, theirs = getattr(person, name), getattr(known, name)
                if mine is not None and (theirs is None or mine < theirs):
                    setattr(known, name, mine)
        async with self._write() as connection:
            await connection.execute(tables.tracking.insert(), rows)
            await connection.execute(
                self._insert(tables.recipients).on_conflict_do_nothing(
                    index_elements=["campaign_id", "recipient_email"]
                ),
                [to_row(person) for person in people.values()],
            )
            await self._append_events(connection, queued(records))
        return len(rows)

    async def get_tracking(self, user_id: str, tracking_id: str) -> EmailTracking | None:
        tracking = tables.tracking
        return await self._read_one(
            EmailTracking,
            select(tracking).where(tracking.c._id == tracking_id, tracking.c.user_id == user_id),
        )

    async def get_tracking_unscoped(self, tracking_id: str) -> EmailTracking | None:
        return await self._read_one(EmailTracking, select(T).where(T.c._id == tracking_id))

    async def list_tracking(self, user_id: str, query: RecipientQuery) -> Page[EmailTracking]:
        tracking = tables.tracking
        condition = and_(tracking.c.campaign_id == query.campaign_id, tracking.c.user_id == user_id)
        if query.status is not None:
            condition = and_(condition, tracking.c.status == query.status.value)
        if query.step is not None:
            condition = and_(condition, tracking.c.step == query.step)
        if query.search:
            # Addresses are stored lowercased; the search is literal (no LIKE wildcards).
            found = tracking.c.recipient_email.contains(query.search.lower(), autoescape=True)
            condition = and_(condition, found)
        order = (tracking.c.scheduled_at, tracking.c._id)
        async with self._read() as connection:
            return await self._page(
                connection, EmailTracking, tracking, condition, order, query.offset, query.limit
            )

    async def export_tracking(
        self, user_id: str, campaign_id: str, *, after: tuple[str, int] | None, limit: int
    ) -> list[EmailTracking]:
        tracking = tables.tracking
        # The unique (campaign_id, recipient_email, step) index serves the order and the key.
        condition = and_(tracking.c.campaign_id == campaign_id, tracking.c.user_id == user_id)
        if after is not None:
            key = tuple_(tracking.c.recipient_email, tracking.c.step)
            condition = and_(condition, key > tuple_(literal(after[0]), literal(after[1])))
        statement = (
            select(tracking)
            .where(condition)
            .order_by(tracking.c.recipient_email, tracking.c.step)
            .limit(limit)
        )
        async with self._read() as connection:
            rows = (await connection.execute(statement)).mappings()
            return [EmailTracking.model_validate(dict(row)) for row in rows]

    async def count_tracking_by_status(self, user_id: str, campaign_id: str) -> dict[str, int]:
        tracking = tables.tracking
        async with self._read() as connection:
            rows = await connection.execute(
                select(tracking.c.status, func.count())
                .where(tracking.c.campaign_id == campaign_id, tracking.c.user_id == user_id)
                .group_by(tracking.c.status)
            )
            return {str(status): int(count) for status, count in rows}

    async def find_tracking_by_message_ids(
        self, message_ids: Collection[str]
    ) -> list[EmailTracking]:
        if not message_ids:
            return []
        async with self._read() as connection:
            rows = (
                await connection.execute(select(T).where(T.c.message_id.in_(list(message_ids))))
            ).mappings()
            return [EmailTracking.model_validate(dict(row)) for row in rows]

    async def find_answers_by_message_ids(
        self, message_ids: Collection[str]
    ) -> list[ConversationMessage]:
        if not message_ids:
            return []
        answers = tables.conversation_messages
        query = select(answers).where(
            answers.c.direction == "out", answers.c.message_id.in_(sorted(set(message_ids)))
        )
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings()
            return [ConversationMessage.model_validate(dict(row)) for row in rows]

    async def record_answer_open(self, answer_id: str, *, at: datetime, human: bool) -> bool:
        answers = tables.conversation_messages
        tracked = and_(answers.c._id == answer_id, answers.c.track_opens.is_(True))
        async with self._write() as connection:
            found = await connection.execute(
                update(answers)
                .where(tracked)
                .values(opened_at=func.coalesce(answers.c.opened_at, at))
            )
            if found.rowcount and human:
                await connection.execute(
                    update(answers)
                    .where(tracked, answers.c.human_opened_at.is_(None))
                    .values(human_opened_at=at)
                )
        return bool(found.rowcount)

    async def find_latest_sent_to(
        self, mailbox_id: str, recipient_email: str, *, since: datetime
    ) -> EmailTracking | None:
        return await self._read_one(
            EmailTracking,
            select(T)
            .where(
                T.c.mailbox_id == mailbox_id,
                T.c.recipient_email == recipient_email.lower(),
                T.c.sent_at >= since,
            )
            .order_by(T.c.sent_at.desc(), T.c._id.desc())
            .limit(1),
        )

    async def count_soft_bounces(
        self, user_id: str, recipient_email: str, *, since: datetime
    ) -> int:
        async with self._read() as connection:
            count = await connection.scalar(
                select(func.count())
                .select_from(E.join(T, E.c.record_id == T.c._id))
                .where(
                    T.c.user_id == user_id,
                    T.c.recipient_email == recipient_email.lower(),
                    E.c.type == EventType.BOUNCE.value,
                    E.c.occurred_at >= since,
                    E.c.details["bounce"].as_string() == "soft",
                )
            )
            return int(count or 0)

    async def add_unmatched(self, item: UnmatchedInbound) -> None:
        async with self._write() as connection:
            await connection.execute(tables.unmatched.insert().values(to_row(item)))

    async def list_unmatched(
        self, user_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[UnmatchedInbound]:
        unmatched = tables.unmatched
        order = (unmatched.c.received_at.desc(), unmatched.c._id.desc())
        async with self._read() as connection:
            return await self._page(
                connection,
                UnmatchedInbound,
                unmatched,
                unmatched.c.user_id == user_id,
                order,
                offset,
                limit,
            )

    async def record_event(self, event: EmailEvent, change: EventChange) -> dict[str, int]:
        firsts, suppress = change.firsts, change.suppress
        status_from, status_to = change.status_from, change.status_to
        check_firsts(firsts)
        at = event.occurred_at
        events = [event]
        async with self._write() as connection:
            deltas = await self._set_firsts(connection, event, firsts)
            if status_to is not None:
                await connection.execute(
                    update(T)
                    .where(
                        T.c._id == event.record_id,
                        T.c.status.in_([status.value for status in status_from]),
                    )
                    .values(status=status_to.value, updated_at=event.occurred_at)
                )
            if change.stops_sequence or change.postpone_until is not None:
                email = await self._email_of(connection, event.record_id)
                if email is not None and change.stops_sequence:
                    stopped = await self._end_sequence(connection, event.campaign_id, email, at)
                    events += sequence_stopped(event, stopped)
                elif email is not None and change.postpone_until is not None:
                    await self._postpone(
                        connection, event.campaign_id, email, change.postpone_until
                    )
            if change.lead_status is not None:
                email = await self._email_of(connection, event.record_id)
                if email is not None:
                    await self._move_lead_status(
                        connection, event.campaign_id, email, change.lead_status, at
                    )
            if change.received is not None:
                await self._keep_received(connection, change.received)
            if suppress is not None:
                await self._suppress(connection, suppress)
            if deltas:
                await self._increment(connection, event.campaign_id, deltas, event.occurred_at)
            await self._append_events(connection, events)
        return deltas

    async def _set_firsts(
        self, connection: AsyncConnection, event: EmailEvent, firsts: Mapping[str, str]
    ) -> dict[str, int]:
        """Set each of `firsts` (record timestamp → counter) at the event's moment where it
        is still empty; the counters that moved."""
        deltas: dict[str, int] = {}
        at = event.occurred_at
        for field, counter in firsts.items():
            # Only the first event of its kind sets the email's field, and only the first
            # of the person's emails to have it moves the counter: counters count people.
            changed = (
                await connection.execute(
                    update(T)
                    .where(T.c._id == event.record_id, T.c[field].is_(None))
                    .values({field: at, "updated_at": at})
                    .returning(T.c.recipient_email, T.c.step)
                )
            ).first()
            if changed is None:
                continue
            email, step = changed
            if field in COUNTED_ON_FIRST_EMAIL:
                gained = step == 1
            else:
                gained = bool(
                    await self._first_for_people(
                        connection, event.campaign_id, event.user_id, [email], field, at
                    )
                )
            if gained:
                deltas[counter] = deltas.get(counter, 0) + 1
        return deltas

    async def unsettled_emails(self, *, before: datetime, limit: int) -> list[UnsettledEmail]:
        statement = (
            select(E.c.user_id, E.c.record_id, func.min(E.c.occurred_at).label("since"))
            .where(E.c.machine_reason == SETTLING, E.c.occurred_at <= before)
            .group_by(E.c.user_id, E.c.record_id)
            .order_by(func.min(E.c.occurred_at))
            .limit(limit)
        )
        async with self._read() as connection:
            rows = (await connection.execute(statement)).all()
        return [
            UnsettledEmail(str(user_id), str(record_id), _utc(since))
            for user_id, record_id, since in rows
        ]

    async def list_fetches(
        self, user_id: str, record_id: str, *, since: datetime, limit: int
    ) -> list[EmailEvent]:
        statement = (
            select(E)
            .where(
                E.c.record_id == record_id,
                E.c.user_id == user_id,
                E.c.type.in_(sorted(kind.value for kind in FETCHES)),
                E.c.occurred_at >= since,
            )
            .order_by(E.c.occurred_at, E.c._id)
            .limit(limit)
        )
        async with self._read() as connection:
            rows = (await connection.execute(statement)).mappings()
            return [EmailEvent.model_validate(dict(row)) for row in rows]

    async def settle_events(
        self, record_id: str, settled: Sequence[SettledEvent]
    ) -> list[EmailEvent]:
        decided: list[EmailEvent] = []
        if not settled:
            return decided
        async with self._write() as connection:
            deltas: dict[str, int] = {}
            for item in settled:
                event = item.event
                verdict = await connection.execute(
                    update(E)
                    .where(
                        E.c._id == event.id,
                        E.c.record_id == record_id,
                        E.c.machine_reason == SETTLING,
                    )
                    .values(
                        machine=event.machine,
                        machine_reason=event.machine_reason,
                        details=event.details,
                    )
                )
                if verdict.rowcount != 1:
                    continue  # decided meanwhile, by another worker
                decided.append(event)
                for counter, moved in (
                    await self._set_firsts(connection, event, item.firsts)
                ).items():
                    deltas[counter] = deltas.get(counter, 0) + moved
            if deltas:
                campaign_id = decided[0].campaign_id
                await self._increment(connection, campaign_id, deltas, decided[-1].occurred_at)
        return decided

    async def event_series(self, user_id: str, campaign_id: str) -> list[dict[str, Any]]:
        if self.backend == "postgresql":
            hour: Any = func.date_trunc("hour", E.c.occurred_at)
        else:
            hour = func.strftime("%Y-%m-%d %H:00:00", E.c.occurred_at)
        statement = (
            select(hour.label("hour"), E.c.type, E.c.machine, func.count().label("count"))
            .where(E.c.campaign_id == campaign_id, E.c.user_id == user_id)
            .group_by(hour, E.c.type, E.c.machine)
            .order_by(hour, E.c.type, E.c.machine)
        )
        async with self._read() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        series = []
        for row in rows:
            series.append(
                {
                    "hour": _utc(row["hour"]),
                    "type": row["type"],
                    "machine": bool(row["machine"]),
                    "count": int(row["count"]),
                }
            )
        return series

    async def list_events(
        self, user_id: str, record_id: str, *, limit: int = 100
    ) -> list[EmailEvent]:
        async with self._read() as connection:
            rows = (
                await connection.execute(
                    select(E)
                    .where(E.c.record_id == record_id, E.c.user_id == user_id)
                    .order_by(E.c.occurred_at, E.c._id)
                    .limit(limit)
                )
            ).mappings()
            return [EmailEvent.model_validate(dict(row)) for row in rows]
