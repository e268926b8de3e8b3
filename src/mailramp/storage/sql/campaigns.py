"""Campaigns on SQL, always scoped to their owner (the worker's lookup says so)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Text, and_, cast, or_, select, update

from mailramp.campaigns.models import Campaign
from mailramp.campaigns.repository import CampaignQuery
from mailramp.kit.types import Page
from mailramp.metrics.models import CampaignMetrics
from mailramp.storage.rows import changes_row, to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.base import SqlBase

C = tables.campaigns


class SqlCampaigns(SqlBase):
    """CampaignRepository on SQL."""

    async def insert_campaign(self, campaign: Campaign, metrics: CampaignMetrics) -> Campaign:
        row = to_row(campaign)
        async with self._write(row) as connection:
            await connection.execute(tables.campaigns.insert().values(row))
            await connection.execute(tables.metrics.insert().values(to_row(metrics)))
        return campaign

    def _campaign_of(self, user_id: str, campaign_id: str) -> Any:
        campaigns = tables.campaigns
        return and_(campaigns.c.campaign_id == campaign_id, campaigns.c.user_id == user_id)

    async def get_campaign(self, user_id: str, campaign_id: str) -> Campaign | None:
        return await self._read_one(
            Campaign, select(tables.campaigns).where(self._campaign_of(user_id, campaign_id))
        )

    async def get_campaign_unscoped(self, campaign_id: str) -> Campaign | None:
        return await self._read_one(Campaign, select(C).where(C.c.campaign_id == campaign_id))

    async def list_campaigns(self, user_id: str, query: CampaignQuery) -> Page[Campaign]:
        campaigns = tables.campaigns
        condition = campaigns.c.user_id == user_id
        if query.statuses is not None:
            wanted = [str(status) for status in query.statuses]
            condition = and_(condition, campaigns.c.status.in_(wanted))
        if query.mailbox_id is not None:
            # In `mailbox_ids` (a JSON list) or, for rows from before it, `mailbox_id`. The
            # id is 24 hex characters (checked by the service), so it has no LIKE wildcard.
            listed = cast(campaigns.c.mailbox_ids, Text).like(f'%"{query.mailbox_id}"%')
            condition = and_(condition, or_(campaigns.c.mailbox_id == query.mailbox_id, listed))
        order = (campaigns.c.created_at.desc(), campaigns.c._id.desc())
        async with self._read() as connection:
            return await self._page(
                connection, Campaign, campaigns, condition, order, query.offset, query.limit
            )

    async def update_campaign(self, read: Campaign, changes: Mapping[str, Any]) -> Campaign | None:
        user_id, campaign_id, expected_status = read.user_id, read.campaign_id, read.status
        values = changes_row(changes)
        campaigns = tables.campaigns
        condition = self._campaign_of(user_id, campaign_id)
        async with self._write(values) as connection:
            result = await connection.execute(
                update(campaigns)
                .where(condition, campaigns.c.status == expected_status.value)
                .values(values)
            )
            if result.rowcount != 1:
                return None
            if "mailbox_id" in values:
                await connection.execute(
                    update(tables.metrics)
                    .where(tables.metrics.c.campaign_id == campaign_id)
                    .values(mailbox_id=values["mailbox_id"])
                )
            return await self._one(connection, Campaign, select(campaigns).where(condition))
