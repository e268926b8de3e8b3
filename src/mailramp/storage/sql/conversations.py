"""People's lead statuses and the users' own labels on SQL."""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select

from mailramp.conversations.models import LeadLabel
from mailramp.storage.rows import to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.base import SqlBase
from mailramp.tracking.models import CampaignRecipient

P = tables.recipients
L = tables.lead_labels


class SqlConversations(SqlBase):
    async def get_person(
        self, user_id: str, campaign_id: str, recipient_email: str
    ) -> CampaignRecipient | None:
        query = select(P).where(
            P.c.user_id == user_id,
            P.c.campaign_id == campaign_id,
            P.c.recipient_email == recipient_email,
        )
        return await self._read_one(CampaignRecipient, query)

    async def count_lead_statuses(self, user_id: str, campaign_id: str) -> dict[str, int]:
        query = (
            select(P.c.lead_status, func.count())
            .where(
                P.c.user_id == user_id,
                P.c.campaign_id == campaign_id,
                P.c.lead_status.is_not(None),
            )
            .group_by(P.c.lead_status)
        )
        async with self._read() as connection:
            return {
                str(status): int(count) for status, count in (await connection.execute(query)).all()
            }

    async def count_lead_status_holders(self, user_id: str, status: str) -> int:
        query = select(func.count()).where(P.c.user_id == user_id, P.c.lead_status == status)
        async with self._read() as connection:
            return int((await connection.execute(query)).scalar_one())

    async def add_lead_label(self, label: LeadLabel) -> None:
        row = to_row(label)
        async with self._write({"name": label.name}) as connection:
            await connection.execute(insert(L).values(row))

    async def list_lead_labels(self, user_id: str) -> list[LeadLabel]:
        query = select(L).where(L.c.user_id == user_id).order_by(L.c.key)
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings()
            return [LeadLabel.model_validate(dict(row)) for row in rows]

    async def delete_lead_label(self, user_id: str, key: str) -> bool:
        async with self._write() as connection:
            gone = await connection.execute(delete(L).where(L.c.user_id == user_id, L.c.key == key))
        return bool(gone.rowcount)
