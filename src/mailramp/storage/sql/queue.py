"""The send queue on SQL: import, planning writes, leases, outcomes and the lifecycle (the
rules themselves are in `sending/outcomes.py` and `sending/lifecycle.py`).

Leasing: PostgreSQL selects due rows `FOR UPDATE SKIP LOCKED`, so any number of workers
claim disjoint rows without waiting on each other; SQLite has one writer at a time (BEGIN
IMMEDIATE), which gives the same guarantee for workers on one machine.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.campaigns.repository import PendingSchedule, PlanFunction, Slot
from mailramp.mailboxes.models import MailboxStatus
from mailramp.sending import lifecycle, outcomes
from mailramp.sending import models as send_models
from mailramp.sending.heartbeats import WorkerHeartbeat
from mailramp.sending.repository import Lease, RecipientBatches
from mailramp.storage.rows import to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.people import CHANGED, SqlPeople
from mailramp.tracking.events import (
    COUNTED_ON_FIRST_EMAIL,
    ChangedEmail,
    queued,
    state_events,
    taken_out,
)
from mailramp.tracking.models import (
    UNSENT_STATUSES,
    EmailEvent,
    EmailTracking,
    EventType,
    TrackingStatus,
)

T = tables.tracking


C = tables.campaigns
M = tables.mailboxes


P = tables.recipients


UPDATE_BATCH = 1000
UNSENT = [status.value for status in UNSENT_STATUSES]


def _due(statement: Select[Any], now: datetime, *, campaign: ColumnElement[bool]) -> Select[Any]:
    """`statement` narrowed to the records a worker may lease now: pending, due, with no live
    lease, on a mailbox that can send, of a campaign that meets `campaign`."""
    return (
        statement.join(C, C.c.campaign_id == T.c.campaign_id)
        .join(M, M.c._id == T.c.mailbox_id)
        .where(
            T.c.status == TrackingStatus.PENDING.value,
            T.c.scheduled_at <= now,
            or_(T.c.lease_expires_at.is_(None), T.c.lease_expires_at < now),
            campaign,
            M.c.status == MailboxStatus.ACTIVE.value,
            M.c.unlinked_at.is_(None),
        )
    )


M = tables.mailboxes


class SqlQueue(SqlPeople):
    """SendingRepository and CampaignQueue on SQL."""

    async def import_recipients(
        self, campaign: Campaign, batches: RecipientBatches, *, plan: PlanFunction
    ) -> send_models.ImportCounts:
        # Each batch is a short transaction of its own, so a long file never holds the
        # write lock (on SQLite: the whole database) for more than one batch; parsing runs
        # outside any transaction. New records stay unscheduled (scheduled_at NULL: no
        # worker claims them, no plan counts them) until the whole file is in and the plan
        # fits. A refusal — a bad row, a plan that does not fit, an error — takes back
        # what this import inserted: all or nothing, by compensation. A batch holds each
        # person's first email and their follow-ups; counts are of people (first emails).
        accepted = duplicates = suppressed = 0
        inserted: list[str] = []
        started = campaign.updated_at  # overwritten by each batch's own time below
        try:
            async for batch in batches:
                if not batch:
                    continue
                started = batch[0].created_at
                async with self._write() as connection:
                    emails = {record.recipient_email for record in batch}
                    blocked = await self._suppressed_in(connection, campaign.user_id, emails)
                    rows = [
                        to_row(r) | {"scheduled_at": None}
                        for r in batch
                        if r.recipient_email not in blocked
                    ]
                    firsts = sum(row["step"] == 1 for row in rows)
                    suppressed += sum(r.step == 1 for r in batch) - firsts
                    if not rows:
                        continue
                    statement = (
                        self._insert(T)
                        .on_conflict_do_nothing(
                            index_elements=["campaign_id", "recipient_email", "step"]
                        )
                        .returning(T.c._id, T.c.step, T.c.recipient_email)
                    )
                    new = (await connection.execute(statement, rows)).all()
                    people = {email for _, step, email in new if step == 1}
                    await self._add_people(
                        connection,
                        campaign.campaign_id,
                        campaign.user_id,
                        people,
                        batch[0].created_at,
                    )
                    taken = {record_id for record_id, _, _ in new}
                    await self._append_events(
                        connection, queued([r for r in batch if r.id in taken])
                    )
                inserted += [record_id for record_id, _, _ in new]
                accepted += len(people)
                duplicates += firsts - len(people)
            await self._schedule_pending(campaign.campaign_id, plan)
        except BaseException:
            await self._take_back(campaign.campaign_id, inserted, started)
            raise
        async with self._write() as connection:
            total = await self._count_records(connection, campaign.campaign_id)
            await connection.execute(
                update(C)
                .where(C.c.campaign_id == campaign.campaign_id)
                .values(total_recipients=total)
            )
        return send_models.ImportCounts(
            accepted=accepted, duplicates=duplicates, suppressed=suppressed, total_recipients=total
        )

    async def _take_back(self, campaign_id: str, record_ids: list[str], at: datetime) -> None:
        """Delete what a refused import inserted (only emails still waiting to be sent), and
        the people left with no email."""
        for start in range(0, len(record_ids), UPDATE_BATCH):
            async with self._write() as connection:
                gone = await connection.execute(
                    delete(T)
                    .where(
                        T.c._id.in_(record_ids[start : start + UPDATE_BATCH]),
                        T.c.status.in_(UNSENT),
                    )
                    .returning(*CHANGED)
                )
                await self._append_events(
                    connection,
                    taken_out([ChangedEmail(*row) for row in gone], "import_refused", at),
                )
        emailed = select(T.c._id).where(
            T.c.campaign_id == P.c.campaign_id, T.c.recipient_email == P.c.recipient_email
        )
        async with self._write() as connection:
            await connection.execute(
                delete(P).where(P.c.campaign_id == campaign_id, ~emailed.exists())
            )

    async def _count_records(self, connection: AsyncConnection, campaign_id: str) -> int:
        """The campaign's people: one first email each."""
        count = await connection.execute(
            select(func.count()).select_from(T).where(T.c.campaign_id == campaign_id, T.c.step == 1)
        )
        return int(count.scalar_one())

    async def _schedule_pending(self, campaign_id: str, plan: PlanFunction) -> int:
        """Spread the campaign's pending first emails over the plan's slots (mailbox and
        time), in import order, with each person's waiting follow-ups at the slot's times
        and on its mailbox. People whose first email left keep their follow-ups as they are.
        The plan is computed (and may refuse) before anything is written; the writes go in
        short transactions of UPDATE_BATCH records, each touching only records still
        unsent (a worker may claim the first ones meanwhile)."""
        pending = and_(
            T.c.campaign_id == campaign_id,
            T.c.step == 1,
            T.c.status == TrackingStatus.PENDING.value,
        )
        async with self._read() as connection:
            # ObjectIds grow with time, so ordering by _id keeps the import order. Plain
            # lists of scalars: a campaign of 200,000 people plans in a few MB.
            ids = list(
                (await connection.execute(select(T.c._id).where(pending).order_by(T.c._id)))
                .scalars()
                .all()
            )
            zoned = select(T.c.timezone).where(pending).order_by(T.c._id)
            zoned_count = await connection.scalar(
                select(func.count()).where(pending, T.c.timezone.is_not(None))
            )
            zones: list[str | None] = [None] * len(ids)
            if zoned_count:
                zones = list((await connection.execute(zoned)).scalars().all())
        slots = plan(zones)
        firsts = (
            update(T)
            .where(T.c._id == bindparam("record_id"), T.c.status == TrackingStatus.PENDING.value)
            .values(
                scheduled_at=bindparam("when"),
                mailbox_id=bindparam("mailbox"),
                next_attempt_at=None,
            )
        )
        later = (
            update(T)
            .where(
                T.c.campaign_id == campaign_id,
                T.c.recipient_email == bindparam("email"),
                T.c.step == bindparam("number"),
                T.c.status == TrackingStatus.WAITING.value,
            )
            .values(scheduled_at=bindparam("when"), mailbox_id=bindparam("mailbox"))
        )
        for start in range(0, len(ids), UPDATE_BATCH):
            chunk = list(
                zip(
                    ids[start : start + UPDATE_BATCH],
                    slots[start : start + UPDATE_BATCH],
                    strict=True,
                )
            )
            async with self._write() as connection:
                await connection.execute(
                    firsts,
                    [
                        {"record_id": record_id, "when": slot.at, "mailbox": slot.mailbox_id}
                        for record_id, slot in chunk
                    ],
                )
                if any(slot.follow_ups for _, slot in chunk):
                    emails = dict(
                        (
                            await connection.execute(
                                select(T.c._id, T.c.recipient_email).where(
                                    T.c._id.in_([record_id for record_id, _ in chunk])
                                )
                            )
                        ).all()
                    )
                    await connection.execute(
                        later,
                        [
                            {
                                "email": emails[record_id],
                                "number": step,
                                "when": moment,
                                "mailbox": slot.mailbox_id,
                            }
                            for record_id, slot in chunk
                            for step, moment in slot.follow_ups
                        ],
                    )
        return len(ids)

    async def pending_schedule(self, user_id: str, campaign_id: str) -> PendingSchedule:
        tracking = tables.tracking
        moment = tracking.c.scheduled_at
        async with self._read() as connection:
            row = (
                await connection.execute(
                    select(
                        func.count(),
                        func.min(moment),
                        func.max(moment),
                        func.sum(case((tracking.c.step == 1, 1), else_=0)),
                    ).where(
                        tracking.c.campaign_id == campaign_id,
                        tracking.c.user_id == user_id,
                        tracking.c.status.in_(UNSENT),
                    )
                )
            ).one()
            return PendingSchedule(int(row[0] or 0), row[1], row[2], int(row[3] or 0))

    async def pending_slots(self, user_id: str, campaign_id: str) -> list[Slot]:
        query = select(T.c.mailbox_id, T.c.scheduled_at, T.c.step).where(
            T.c.campaign_id == campaign_id,
            T.c.user_id == user_id,
            T.c.status.in_(UNSENT),
            T.c.scheduled_at.is_not(None),
        )
        async with self._read() as connection:
            rows = (await connection.execute(query)).all()
        return [Slot(mailbox_id, moment, step=step) for mailbox_id, moment, step in rows]

    async def step_emails(self, campaign_id: str, step: int) -> list[EmailTracking]:
        query = select(T).where(T.c.campaign_id == campaign_id, T.c.step == step).order_by(T.c._id)
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings()
            return [EmailTracking.model_validate(dict(row)) for row in rows]

    async def highest_step(self, campaign_id: str) -> int:
        async with self._read() as connection:
            found = await connection.scalar(
                select(func.max(T.c.step)).where(T.c.campaign_id == campaign_id)
            )
        return int(found or 1)

    async def remove_step(
        self, campaign_id: str, step: int, *, next_step: int | None, now: datetime
    ) -> int:
        gone = T.alias("removed_step")
        async with self._write() as connection:
            if next_step is not None:
                due = (
                    select(gone.c.scheduled_at)
                    .where(
                        gone.c.campaign_id == campaign_id,
                        gone.c.step == step,
                        gone.c.recipient_email == T.c.recipient_email,
                        gone.c.status == TrackingStatus.PENDING.value,
                    )
                    .scalar_subquery()
                )
                await connection.execute(
                    update(T)
                    .where(
                        T.c.campaign_id == campaign_id,
                        T.c.step == next_step,
                        T.c.status == TrackingStatus.WAITING.value,
                        due.is_not(None),
                    )
                    .values(status=TrackingStatus.PENDING.value, scheduled_at=due)
                )
            deleted = await connection.execute(
                delete(T)
                .where(T.c.campaign_id == campaign_id, T.c.step == step, T.c.status.in_(UNSENT))
                .returning(*CHANGED)
            )
            removed = [ChangedEmail(*row) for row in deleted]
            await self._append_events(connection, taken_out(removed, "step_removed", now))
            return len(removed)

    async def replan_pending(self, campaign: Campaign, *, plan: PlanFunction) -> int:
        return await self._schedule_pending(campaign.campaign_id, plan)

    async def planned_times_for_mailbox(
        self, mailbox_id: str, *, exclude_campaign_id: str, start: datetime, end: datetime
    ) -> list[datetime]:
        moments: list[datetime | None] = []
        async with self._read() as connection:
            for count in lifecycle.DAILY_LIMIT_COUNTS:
                column = T.c[count.moment]
                query = select(column).where(
                    T.c.mailbox_id == mailbox_id,
                    T.c.status.in_(count.statuses),
                    column >= start,
                    column < end,
                )
                if count.other_campaigns_only:
                    query = query.where(T.c.campaign_id != exclude_campaign_id)
                moments += (await connection.execute(query)).scalars()
        return [moment for moment in moments if moment is not None]

    async def cancel_pending(self, campaign_id: str, *, now: datetime) -> int:
        async with self._write() as connection:
            result = await connection.execute(
                update(T)
                .where(T.c.campaign_id == campaign_id, T.c.status.in_(UNSENT))
                .values(lifecycle.cancelled_pending(now))
                .returning(*CHANGED)
            )
            cancelled = [ChangedEmail(*row) for row in result.all()]
            await self._append_events(connection, state_events(cancelled, EventType.CANCELLED, now))
            return len(cancelled)

    async def resend_uncertain(self, user_id: str, campaign_id: str, *, now: datetime) -> int:
        async with self._write() as connection:
            result = await connection.execute(
                update(T)
                .where(
                    T.c.campaign_id == campaign_id,
                    T.c.user_id == user_id,
                    T.c.status == TrackingStatus.UNCERTAIN.value,
                )
                .values(
                    status=TrackingStatus.PENDING.value,
                    scheduled_at=now,
                    next_attempt_at=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
                .returning(*CHANGED)
            )
            queued = [ChangedEmail(*row) for row in result.all()]
            await self._append_events(
                connection, state_events(queued, EventType.QUEUED, now, {"resend": True})
            )
            return len(queued)

    async def run_lifecycle(self, *, now: datetime) -> send_models.LifecycleReport:
        async with self._write() as connection:
            uncertain = [
                ChangedEmail(*row)
                for row in await connection.execute(
                    update(T)
                    .where(T.c.status == TrackingStatus.SENDING.value, T.c.lease_expires_at < now)
                    .values(lifecycle.lease_expired(now))
                    .returning(*CHANGED)
                )
            ]
            activated = await connection.execute(
                update(C)
                .where(C.c.status == CampaignStatus.SCHEDULED.value, C.c.start_time <= now)
                .values(lifecycle.campaign_started(now))
            )
            # Sends due inside the window may still go out for EXPIRY_GRACE after it.
            ended = select(C.c.campaign_id).where(
                C.c.status == CampaignStatus.ACTIVE.value,
                C.c.end_time <= now - send_models.EXPIRY_GRACE,
            )
            expired = [
                ChangedEmail(*row)
                for row in await connection.execute(
                    update(T)
                    .where(
                        T.c.status.in_(UNSENT),
                        T.c.campaign_id.in_(ended.scalar_subquery()),
                    )
                    .values(lifecycle.window_closed(now))
                    .returning(*CHANGED)
                )
            ]
            # Complete active campaigns with nothing left to send: past their end, or with
            # recipients all of whom reached a final state.
            unfinished = select(T.c._id).where(
                T.c.campaign_id == C.c.campaign_id,
                T.c.status.in_(lifecycle.UNFINISHED_STATES),
            )
            has_records = select(T.c._id).where(T.c.campaign_id == C.c.campaign_id)
            completed = await connection.execute(
                update(C)
                .where(
                    C.c.status == CampaignStatus.ACTIVE.value,
                    ~unfinished.exists(),
                    or_(C.c.end_time <= now, has_records.exists()),
                )
                .values(lifecycle.campaign_completed(now))
            )
            await self._append_events(
                connection,
                state_events(uncertain, EventType.UNCERTAIN, now, {"source": "lease_expired"})
                + state_events(expired, EventType.EXPIRED, now),
            )
        return send_models.LifecycleReport(
            activated=int(activated.rowcount),
            completed=int(completed.rowcount),
            expired_records=len(expired),
            uncertain_records=len(uncertain),
        )

    async def sequence_emails(self, campaign_id: str, recipient_email: str) -> list[EmailTracking]:
        query = (
            select(T)
            .where(T.c.campaign_id == campaign_id, T.c.recipient_email == recipient_email)
            .order_by(T.c.step)
        )
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings()
            return [EmailTracking.model_validate(dict(row)) for row in rows]

    async def claim_due(self, lease: Lease, *, limit: int) -> list[EmailTracking]:
        worker_id, now, lease_until = lease.worker_id, lease.now, lease.until
        due = (
            _due(select(T.c._id), now, campaign=C.c.status == CampaignStatus.ACTIVE.value)
            .order_by(T.c.scheduled_at)
            .limit(limit)
        )
        if self.backend == "postgresql":
            due = due.with_for_update(of=T, skip_locked=True)
        async with self._write() as connection:
            ids = (await connection.execute(due)).scalars().all()
            if not ids:
                return []
            await connection.execute(
                update(T)
                .where(T.c._id.in_(ids))
                .values(lease_owner=worker_id, lease_expires_at=lease_until, updated_at=now)
            )
            rows = (
                await connection.execute(
                    select(T).where(T.c._id.in_(ids)).order_by(T.c.scheduled_at)
                )
            ).mappings()
            return [EmailTracking.model_validate(dict(row)) for row in rows]

    async def put_back(self, *, worker_id: str, due: Mapping[str, datetime]) -> int:
        by_moment: dict[datetime, list[str]] = defaultdict(list)
        for record_id, moment in due.items():
            by_moment[moment].append(record_id)
        put = 0
        async with self._write() as connection:
            for moment, record_ids in sorted(by_moment.items()):
                later = case((T.c.scheduled_at < moment, moment), else_=T.c.scheduled_at)
                result = await connection.execute(
                    update(T)
                    .where(
                        T.c._id.in_(record_ids),
                        T.c.lease_owner == worker_id,
                        T.c.status == TrackingStatus.PENDING.value,
                    )
                    .values(lease_owner=None, lease_expires_at=None, scheduled_at=later)
                )
                put += int(result.rowcount)
        return put

    async def made_since(self, mailbox_id: str, since: datetime) -> int:
        counts = [
            select(func.count())
            .select_from(T)
            .where(
                T.c.mailbox_id == mailbox_id,
                T.c.status.in_(count.statuses),
                T.c[count.moment] >= since,
            )
            .scalar_subquery()
            for count in lifecycle.MADE_COUNTS
        ]
        # Its warm-up emails count against its daily limit too.
        W = tables.warmup_emails
        counts.append(
            select(func.count())
            .select_from(W)
            .where(W.c.mailbox_id == mailbox_id, W.c.sent_at >= since)
            .scalar_subquery()
        )
        async with self._read() as connection:
            return sum(int(n) for n in (await connection.execute(select(*counts))).one())

    async def take_turn(
        self, mailbox_id: str, *, now: datetime, until: datetime
    ) -> datetime | None:
        async with self._write() as connection:
            taken = await connection.execute(
                update(M)
                .where(
                    M.c._id == mailbox_id,
                    or_(M.c.next_send_at.is_(None), M.c.next_send_at <= now),
                )
                .values(next_send_at=until)
            )
            if taken.rowcount:
                return None
            held = await connection.execute(select(M.c.next_send_at).where(M.c._id == mailbox_id))
            return held.scalar() or until

    async def queue_depth(self, *, now: datetime) -> send_models.QueueDepth:
        # What the next worker pass would claim: its lifecycle step first starts campaigns
        # whose start_time came and expires those past end_time, so count those as it will
        # see them — and the number keeps growing while no worker runs at all.
        # Both counts walk ix_email_tracking_status_scheduled_at: `due` ranges over
        # (status = 'pending', scheduled_at <= now) and looks up each row's campaign and
        # mailbox by key; `sending` is the (status = 'sending') prefix. Records planned for
        # later and finished records are never read.
        startable = and_(
            C.c.status.in_([CampaignStatus.ACTIVE.value, CampaignStatus.SCHEDULED.value]),
            C.c.start_time <= now,
            C.c.end_time > now - send_models.EXPIRY_GRACE,  # sends due in the window still go out
        )
        due = _due(select(func.count()).select_from(T), now, campaign=startable).scalar_subquery()
        sending = (
            select(func.count())
            .select_from(T)
            .where(T.c.status == TrackingStatus.SENDING.value)
            .scalar_subquery()
        )
        async with self._read() as connection:
            row = (await connection.execute(select(due, sending))).one()
        return send_models.QueueDepth(due=int(row[0]), sending=int(row[1]))

    async def start_sending(self, lease: Lease, message_ids: dict[str, str]) -> set[str]:
        worker_id, now, lease_until = lease.worker_id, lease.now, lease.until
        if not message_ids:
            return set()
        statement = (
            update(T)
            .where(
                T.c._id == bindparam("record_id"),
                T.c.lease_owner == worker_id,
                T.c.status == TrackingStatus.PENDING.value,
                # A pause or cancel after the claim stops the send here.
                select(C.c._id)
                .where(
                    C.c.campaign_id == T.c.campaign_id,
                    C.c.status == CampaignStatus.ACTIVE.value,
                )
                .exists(),
            )
            .values(
                status=TrackingStatus.SENDING.value,
                message_id=bindparam("mid"),
                attempts=T.c.attempts + 1,
                lease_expires_at=lease_until,
                updated_at=now,
            )
        )
        async with self._write() as connection:
            await connection.execute(
                statement, [{"record_id": rid, "mid": mid} for rid, mid in message_ids.items()]
            )
            # Which rows this worker now holds in `sending`: only those may leave.
            mine = await connection.execute(
                select(T.c._id).where(
                    T.c._id.in_(list(message_ids)),
                    T.c.lease_owner == worker_id,
                    T.c.status == TrackingStatus.SENDING.value,
                )
            )
            return set(mine.scalars())

    async def record_results(
        self,
        results: Sequence[send_models.SendResult],
        *,
        now: datetime,
        worker_id: str | None = None,
    ) -> None:
        if not results:
            return
        deltas: dict[str, Counter[str]] = defaultdict(Counter)
        sent = [result for result in results if result.outcome is send_models.Outcome.SENT]
        # Rows other workers may also lock (suppression entries, campaign_matrix rows) are
        # taken in one order by every transaction, so two workers never deadlock crosswise.
        others = sorted(
            (result for result in results if result.outcome is not send_models.Outcome.SENT),
            key=lambda result: (result.user_id, result.recipient_email, result.record_id),
        )
        events: list[EmailEvent] = []
        async with self._write() as connection:
            # The common case in one statement: every accepted message of the batch sent
            # under our Message-ID; one each for those the provider sent under its own.
            same_values = [r for r in sent if r.message_id is None]
            batches = [same_values] if same_values else []
            batches += [[r] for r in sent if r.message_id is not None]
            changed_sent: list[send_models.SendResult] = []
            firsts: set[str] = set()  # records that are a person's first email
            for batch in batches:
                changed = await connection.execute(
                    update(T)
                    .where(
                        T.c._id.in_([r.record_id for r in batch]),
                        T.c.status.in_(outcomes.states_it_may_leave(batch[0])),
                    )
                    .values(outcomes.outcome_values(batch[0], now))
                    .returning(T.c._id, T.c.step)
                )
                steps: dict[str, int] = {str(r): int(n) for r, n in changed.all()}
                changed_sent += [r for r in batch if r.record_id in steps]
                for result in batch:
                    if result.record_id in steps:
                        events += outcomes.outcome_events(result, now)
                firsts.update(r for r, step in steps.items() if step == 1)
            await self._count_people(connection, changed_sent, firsts, deltas, now)
            await self._next_steps_due(connection, changed_sent)
            for result in others:
                changed = await connection.execute(
                    update(T)
                    .where(
                        T.c._id == result.record_id,
                        T.c.status.in_(outcomes.states_it_may_leave(result)),
                        T.c.lease_owner == worker_id
                        if worker_id is not None and outcomes.needs_own_lease(result)
                        else true(),
                    )
                    .values(outcomes.outcome_values(result, now))
                    .returning(T.c.step)
                )
                step = changed.scalar()
                if step is None:
                    continue
                events += outcomes.outcome_events(result, now)
                retried = result.outcome is send_models.Outcome.RETRY
                if retried and await self._cancel_retry_of_cancelled(connection, result, now):
                    cancelled = [outcomes.changed_email(result)]
                    events += state_events(cancelled, EventType.CANCELLED, now)
                first = {result.record_id} if step == 1 else set()
                await self._count_people(connection, [result], first, deltas, now)
                if result.outcome in outcomes.ENDS_SEQUENCE:
                    stopped = await self._end_sequence(
                        connection, result.campaign_id, result.recipient_email, now
                    )
                    events += outcomes.ended_by(result, stopped, now)
                suppression = outcomes.suppression_for(result, now)
                if suppression is not None:
                    await self._suppress(connection, suppression)
            for campaign_id in sorted(deltas):
                await self._increment(connection, campaign_id, deltas[campaign_id], now)
            await self._append_events(connection, events)

    async def _count_people(
        self,
        connection: AsyncConnection,
        results: Sequence[send_models.SendResult],
        firsts: Collection[str],
        deltas: dict[str, Counter[str]],
        now: datetime,
    ) -> None:
        """Add to `deltas` the people these recorded outcomes count for the first time
        (`firsts`: the ids among them that are a person's first email)."""
        groups: dict[tuple[str, str, send_models.Outcome], list[str]] = defaultdict(list)
        for result in results:
            key = (result.campaign_id, result.user_id, result.outcome)
            groups[key].append(result.record_id)
        by_id = {result.record_id: result.recipient_email for result in results}
        for (campaign_id, user_id, outcome), ids in sorted(groups.items()):
            for field, counter in outcomes.counted_firsts(outcome).items():
                if field in COUNTED_ON_FIRST_EMAIL:
                    gained = sum(record_id in firsts for record_id in ids)
                else:
                    emails = [by_id[record_id] for record_id in ids]
                    gained = await self._first_for_people(
                        connection, campaign_id, user_id, emails, field, now, add_missing=False
                    )
                if gained:
                    deltas[campaign_id][counter] += gained

    async def _next_steps_due(
        self, connection: AsyncConnection, results: Sequence[send_models.SendResult]
    ) -> None:
        """Each sent email's next step becomes due (in the same unit of work as the send's
        outcome, so a sequence never stalls): `pending`, from the mailbox that sent this
        one, no earlier than planned nor than its delay allows."""
        due = [
            {
                "campaign": r.campaign_id,
                "email": r.recipient_email,
                "number": r.next_step.step,
                "not_before": r.next_step.not_before,
                "mailbox": r.next_step.mailbox_id,
            }
            for r in results
            if r.next_step is not None
        ]
        if not due:
            return
        later = case(
            (
                or_(
                    T.c.scheduled_at.is_(None),
                    T.c.scheduled_at < bindparam("not_before", type_=T.c.scheduled_at.type),
                ),
                bindparam("not_before", type_=T.c.scheduled_at.type),
            ),
            else_=T.c.scheduled_at,
        )
        await connection.execute(
            update(T)
            .where(
                T.c.campaign_id == bindparam("campaign"),
                T.c.recipient_email == bindparam("email"),
                T.c.step == bindparam("number"),
                T.c.status == TrackingStatus.WAITING.value,
            )
            .values(
                status=TrackingStatus.PENDING.value,
                scheduled_at=later,
                mailbox_id=bindparam("mailbox"),
            ),
            due,
        )

    async def _cancel_retry_of_cancelled(
        self, connection: AsyncConnection, result: send_models.SendResult, now: datetime
    ) -> bool:
        """A retry of a message that was in flight when its campaign was cancelled: cancel()
        emptied the queue before this record came back to it, so it is cancelled too.

        The campaign is read after the record was written, FOR SHARE on PostgreSQL: a cancel
        committed before is seen here; one not yet committed waits for this transaction and
        then finds the record pending (its cancel_pending step). Share locks do not conflict
        with each other, so workers recording retries never wait on one another here."""
        status = select(C.c.status).where(C.c.campaign_id == result.campaign_id)
        if self.backend == "postgresql":
            status = status.with_for_update(read=True)
        if (await connection.execute(status)).scalar() != CampaignStatus.CANCELLED.value:
            return False
        await connection.execute(
            update(T).where(T.c._id == result.record_id).values(lifecycle.cancelled_pending(now))
        )
        return True

    async def record_heartbeat(self, beat: WorkerHeartbeat) -> None:
        heartbeats = tables.worker_heartbeats
        values = beat.model_dump()
        statement = self._insert(heartbeats).values(**values)
        changed = {name: value for name, value in values.items() if name != "worker_id"}
        async with self._write() as connection:
            await connection.execute(
                statement.on_conflict_do_update(index_elements=["worker_id"], set_=changed)
            )

    async def list_heartbeats(self) -> list[WorkerHeartbeat]:
        heartbeats = tables.worker_heartbeats
        async with self._read() as connection:
            rows = await connection.execute(
                select(heartbeats).order_by(heartbeats.c.beat_at.desc(), heartbeats.c.worker_id)
            )
            return [WorkerHeartbeat.model_validate(dict(row)) for row in rows.mappings()]

    async def forget_heartbeats(self, *, before: datetime) -> int:
        heartbeats = tables.worker_heartbeats
        async with self._write() as connection:
            result = await connection.execute(
                delete(heartbeats).where(heartbeats.c.beat_at < before)
            )
            return int(result.rowcount)

    async def take_reconciliation_turn(self, *, now: datetime, until: datetime) -> bool:
        return False  # every change commits whole: nothing to reconcile

    async def complete_owed_outcomes(self, *, before: datetime) -> int:
        return 0  # an outcome and its consequences are one transaction: never owed

    async def release_marked(self, *, worker_id: str, record_ids: Collection[str]) -> int:
        # A commit whose answer was lost can leave the mark in place: undo it (the worker
        # knows no provider got these), and free the rest of the group's leases too.
        mine = and_(T.c.lease_owner == worker_id, T.c._id.in_(list(record_ids)))
        async with self._write() as connection:
            marked = await connection.execute(
                update(T)
                .where(mine, T.c.status == TrackingStatus.SENDING.value)
                .values(
                    status=TrackingStatus.PENDING.value,
                    attempts=T.c.attempts - 1,  # the mark counted the attempt
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
            await connection.execute(
                update(T)
                .where(mine, T.c.status == TrackingStatus.PENDING.value)
                .values(lease_owner=None, lease_expires_at=None)
            )
            return int(marked.rowcount)

    async def release_claims(
        self, *, worker_id: str, record_ids: Collection[str] | None = None
    ) -> int:
        condition = and_(T.c.lease_owner == worker_id, T.c.status == TrackingStatus.PENDING.value)
        if record_ids is not None:
            condition = and_(condition, T.c._id.in_(list(record_ids)))
        async with self._write() as connection:
            result = await connection.execute(
                update(T).where(condition).values(lease_owner=None, lease_expires_at=None)
            )
            return int(result.rowcount)
