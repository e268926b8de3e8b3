"""What the metrics domain needs from storage."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Protocol

from mailramp.metrics.models import CampaignMetrics


class MetricsRepository(Protocol):
    """`campaign_matrix` documents (created with their campaign, see CampaignRepository)."""

    async def get_metrics(self, user_id: str, campaign_id: str) -> CampaignMetrics | None:
        """The user's campaign's metrics."""
        ...

    async def list_metrics(
        self, user_id: str, campaign_ids: Collection[str]
    ) -> list[CampaignMetrics]:
        """The user's metrics of these campaigns, in one query (list pages)."""
        ...

    async def counters_by_step(
        self, user_id: str, campaign_id: str
    ) -> dict[tuple[int, int], dict[str, int]]:
        """The user's campaign's counters computed from its emails, per (step, variant)
        (step 1 the first email, variant 0 = A): how many of that step's emails were sent,
        opened, answered… — the per-step funnel and the A/B figures (only pairs that have
        emails)."""
        ...

    async def get_metrics_unscoped(self, campaign_id: str) -> CampaignMetrics | None:
        """A campaign's metrics whoever owns it — for workers and trusted in-process callers."""
        ...

    async def increment_metrics(
        self, campaign_id: str, deltas: Mapping[str, int], *, at: datetime
    ) -> CampaignMetrics | None:
        """Add `deltas` to counters and recompute delivered and the rates, atomically;
        `at` is the new `last_updated`."""
        ...

    async def recount_needed(self, *, since: datetime) -> list[str]:
        """The campaigns whose counters a crash may have left short since `since`: where a
        change and its counters are not one transaction (MongoDB), the active campaigns
        and those counted since; none where they are (SQL)."""
        ...
