"""What the campaigns domain needs from storage."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.kit.types import Page
from mailramp.metrics.models import CampaignMetrics


@dataclass(frozen=True)
class CampaignQuery:
    """Which of a user's campaigns a list shows: of these statuses (all if None), sending
    from this mailbox (any if None), one page of them."""

    statuses: Collection[CampaignStatus] | None = None
    mailbox_id: str | None = None
    offset: int = 0
    limit: int = 50


PlanFunction = Callable[[int], Sequence[datetime]]
"""Given how many pending records a campaign has, their send times (or PlanError)."""


class CampaignRepository(Protocol):
    """Campaigns, always scoped to their owner."""

    async def insert_campaign(self, campaign: Campaign, metrics: CampaignMetrics) -> Campaign:
        """Store a campaign and its `campaign_matrix` document in one unit of work: both or
        neither."""
        ...

    async def get_campaign(self, user_id: str, campaign_id: str) -> Campaign | None:
        """The user's campaign with this campaign_id."""
        ...

    async def get_campaign_unscoped(self, campaign_id: str) -> Campaign | None:
        """A campaign whoever owns it (worker, signed tracking requests, CLI)."""
        ...

    async def list_campaigns(self, user_id: str, query: CampaignQuery) -> Page[Campaign]:
        """The user's campaigns that `query` selects, newest first."""
        ...

    async def update_campaign(self, read: Campaign, changes: Mapping[str, Any]) -> Campaign | None:
        """Apply `changes` to the campaign `read` was read from, only if its status is still
        `read.status` (compare-and-set); None when it is missing or its status moved on."""
        ...


class CampaignQueue(Protocol):
    """What the campaign rules ask of the send queue when a campaign's window, mailbox or
    status changes (the queue itself is `sending.repository.SendingRepository`)."""

    async def count_pending(self, user_id: str, campaign_id: str) -> int:
        """How many of the campaign's emails wait to be sent (`pending`)."""
        ...

    async def replan_pending(self, campaign: Campaign, *, plan: PlanFunction) -> int:
        """Reschedule the campaign's pending records with `plan`; returns how many."""
        ...

    async def planned_times_for_mailbox(
        self, mailbox_id: str, *, exclude_campaign_id: str, start: datetime, end: datetime
    ) -> list[datetime]:
        """The mailbox's sends in [start, end) that count against its daily limit: those
        other campaigns have planned (pending), and those any campaign already made (sent,
        bounced, in flight or uncertain)."""
        ...

    async def cancel_pending(self, campaign_id: str, *, now: datetime) -> int:
        """Mark the campaign's records that have not left `cancelled`."""
        ...
