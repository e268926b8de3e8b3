"""Mailboxes' day-by-day histories on SQL, and what they are rolled up from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, insert, select, update

from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.deliverability.models import Placement, WarmupEmail, WarmupStatus
from mailramp.deliverability.repository import SentEmail, WarmupSent
from mailramp.mailboxes.models import Mailbox, MailboxDay
from mailramp.storage.rows import to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.base import SqlBase
from mailramp.storage.sql.event_log import tallied
from mailramp.tracking.events import TALLIED_TYPES, TALLIES

DAYS = tables.mailbox_days
T = tables.tracking
E = tables.events
W = tables.warmup_emails
KEPT_ON_CONFLICT = ("_id", "mailbox_id", "day")


class SqlDeliverability(SqlBase):
    async def linked_mailboxes(self) -> list[Mailbox]:
        boxes = tables.mailboxes
        query = select(boxes).where(boxes.c.unlinked_at.is_(None))
        async with self._read() as connection:
            rows = (await connection.execute(query.order_by(boxes.c.created_at))).mappings()
            return [Mailbox.model_validate(dict(row)) for row in rows]

    async def campaign_emails_sent_since(self, mailbox_id: str, since: datetime) -> list[SentEmail]:
        # The email says which mailbox sent it (and, for the index, when); what became of
        # it is read from the event log, as the counters are.
        def seen(counter: str) -> Any:
            return func.max(case((tallied(TALLIES[counter]), 1), else_=0))

        sent_at = func.min(case((tallied(TALLIES["total_sent"]), E.c.occurred_at)))
        query = (
            select(
                sent_at.label("sent_at"),
                seen("total_bounced").label("bounced"),
                seen("total_complained").label("complained"),
                seen("total_replied").label("replied"),
            )
            .select_from(T.join(E, E.c.record_id == T.c._id))
            .where(
                T.c.mailbox_id == mailbox_id,
                T.c.sent_at >= since,
                E.c.type.in_(TALLIED_TYPES),
            )
            .group_by(T.c._id)
            .having(sent_at >= since)
        )
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [
            SentEmail(
                sent_at=row["sent_at"],
                bounced=bool(row["bounced"]),
                complained=bool(row["complained"]),
                replied=bool(row["replied"]),
            )
            for row in rows
        ]

    async def put_mailbox_days(self, days: Sequence[MailboxDay]) -> None:
        if not days:
            return
        rows = [to_row(day) for day in days]
        statement = self._insert(DAYS).values(rows)
        updated = {
            name: statement.excluded[name] for name in rows[0] if name not in KEPT_ON_CONFLICT
        }
        async with self._write() as connection:
            await connection.execute(
                statement.on_conflict_do_update(index_elements=["mailbox_id", "day"], set_=updated)
            )

    async def sending_campaigns(self) -> list[Campaign]:
        campaigns = tables.campaigns
        query = select(campaigns).where(campaigns.c.status == CampaignStatus.ACTIVE.value)
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings()
            return [Campaign.model_validate(dict(row)) for row in rows]

    async def warmup_sent_since(self, mailbox_id: str, since: datetime) -> list[WarmupSent]:
        query = select(W.c.sent_at, W.c.placement).where(
            W.c.mailbox_id == mailbox_id, W.c.sent_at >= since
        )
        async with self._read() as connection:
            rows = (await connection.execute(query)).all()
        return [
            WarmupSent(sent_at, Placement(placement) if placement else None)
            for sent_at, placement in rows
        ]

    # -- the warm-up pool ---------------------------------------------------------------

    async def warmup_pool(self) -> list[Mailbox]:
        boxes = tables.mailboxes
        query = select(boxes).where(
            boxes.c.unlinked_at.is_(None),
            boxes.c.warmup_enabled.is_(True),
            boxes.c.status == "active",
            boxes.c.is_active.is_(True),
        )
        async with self._read() as connection:
            rows = (await connection.execute(query.order_by(boxes.c.created_at))).mappings()
            return [Mailbox.model_validate(dict(row)) for row in rows]

    async def warmup_openings_between(self, mailbox_id: str, start: datetime, end: datetime) -> int:
        query = (
            select(func.count())
            .select_from(W)
            .where(
                W.c.mailbox_id == mailbox_id,
                W.c.step == 0,
                W.c.planned_at >= start,
                W.c.planned_at < end,
            )
        )
        async with self._read() as connection:
            return int((await connection.execute(query)).scalar_one())

    async def insert_warmup_emails(self, emails: Sequence[WarmupEmail]) -> None:
        if not emails:
            return
        async with self._write() as connection:
            await connection.execute(insert(W), [to_row(email) for email in emails])

    async def claim_warmup_emails(self, now: datetime, *, limit: int) -> list[WarmupEmail]:
        due = (
            select(W.c._id)
            .where(W.c.status == WarmupStatus.PLANNED.value, W.c.planned_at <= now)
            .order_by(W.c.planned_at)
            .limit(limit)
        )
        claimed = []
        async with self._write() as connection:
            for (email_id,) in (await connection.execute(due)).all():
                taken = await connection.execute(
                    update(W)
                    .where(W.c._id == email_id, W.c.status == WarmupStatus.PLANNED.value)
                    .values(
                        status=WarmupStatus.SENDING.value,
                        attempts=W.c.attempts + 1,
                        updated_at=now,
                    )
                    .returning(*W.c)
                )
                row = taken.mappings().first()
                if row is not None:
                    claimed.append(WarmupEmail.model_validate(dict(row)))
        return claimed

    async def finish_warmup_email(
        self, email_id: str, *, status: WarmupStatus, at: datetime, error: str | None = None
    ) -> None:
        values: dict[str, object] = {"status": status.value, "updated_at": at, "last_error": error}
        if status is WarmupStatus.SENT:
            values["sent_at"] = at
        async with self._write() as connection:
            await connection.execute(update(W).where(W.c._id == email_id).values(**values))

    async def warmup_emails_to_find(
        self, mailbox_id: str, *, sent_since: datetime
    ) -> list[WarmupEmail]:
        query = select(W).where(
            W.c.to_mailbox_id == mailbox_id,
            W.c.status == WarmupStatus.SENT.value,
            W.c.found_at.is_(None),
            W.c.sent_at >= sent_since,
        )
        async with self._read() as connection:
            rows = (await connection.execute(query.order_by(W.c.sent_at))).mappings()
            return [WarmupEmail.model_validate(dict(row)) for row in rows]

    async def update_warmup_email(self, email_id: str, changes: Mapping[str, object]) -> None:
        values = {k: (v.value if isinstance(v, Placement) else v) for k, v in changes.items()}
        async with self._write() as connection:
            await connection.execute(update(W).where(W.c._id == email_id).values(**values))

    async def get_warmup_email(self, email_id: str) -> WarmupEmail | None:
        return await self._read_one(WarmupEmail, select(W).where(W.c._id == email_id))
