"""Mailboxes' day-by-day histories on SQL, and what they are rolled up from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.deliverability.repository import SentEmail
from mailramp.mailboxes.models import Mailbox, MailboxDay
from mailramp.storage.rows import to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.base import SqlBase

DAYS = tables.mailbox_days
T = tables.tracking
KEPT_ON_CONFLICT = ("_id", "mailbox_id", "day")


class SqlDeliverability(SqlBase):
    async def linked_mailboxes(self) -> list[Mailbox]:
        boxes = tables.mailboxes
        query = select(boxes).where(boxes.c.unlinked_at.is_(None))
        async with self._read() as connection:
            rows = (await connection.execute(query.order_by(boxes.c.created_at))).mappings()
            return [Mailbox.model_validate(dict(row)) for row in rows]

    async def campaign_emails_sent_since(self, mailbox_id: str, since: datetime) -> list[SentEmail]:
        query = select(T.c.sent_at, T.c.bounced_at, T.c.complained_at, T.c.replied_at).where(
            T.c.mailbox_id == mailbox_id, T.c.sent_at >= since
        )
        async with self._read() as connection:
            rows = (await connection.execute(query)).all()
        return [
            SentEmail(
                sent_at=sent_at,
                bounced=bounced_at is not None,
                complained=complained_at is not None,
                replied=replied_at is not None,
            )
            for sent_at, bounced_at, complained_at, replied_at in rows
        ]

    async def put_mailbox_days(self, days: Sequence[MailboxDay]) -> None:
        if not days:
            return
        async with self._write() as connection:
            for day in days:
                row = to_row(day)
                insert = self._insert(DAYS).values(row)
                await connection.execute(
                    insert.on_conflict_do_update(
                        index_elements=["mailbox_id", "day"],
                        set_={k: v for k, v in row.items() if k not in KEPT_ON_CONFLICT},
                    )
                )

    async def sending_campaigns(self) -> list[Campaign]:
        campaigns = tables.campaigns
        query = select(campaigns).where(campaigns.c.status == CampaignStatus.ACTIVE.value)
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings()
            return [Campaign.model_validate(dict(row)) for row in rows]
