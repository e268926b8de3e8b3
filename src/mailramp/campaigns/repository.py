"""What the campaigns domain needs from storage."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.kit.types import Page
from mailramp.metrics.models import CampaignMetrics


class CampaignRepository(Protocol):
    """Campaigns, always scoped to their owner."""

    async def insert_campaign(self, campaign: Campaign, metrics: CampaignMetrics) -> Campaign:
        """Store a campaign and its `campaign_matrix` document in one unit of work: both or
        neither."""
        ...

    async def get_campaign(self, user_id: str, campaign_id: str) -> Campaign | None:
        """The user's campaign with this campaign_id."""
        ...

    async def list_campaigns(
        self,
        user_id: str,
        *,
        statuses: Collection[CampaignStatus] | None = None,
        mailbox_id: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[Campaign]:
        """The user's campaigns, newest first, optionally filtered."""
        ...

    async def update_campaign(
        self,
        user_id: str,
        campaign_id: str,
        changes: Mapping[str, Any],
        *,
        expected_status: CampaignStatus,
    ) -> Campaign | None:
        """Apply `changes` only if the campaign is still in `expected_status` (compare-and-set);
        None when it is missing or its status moved on."""
        ...
