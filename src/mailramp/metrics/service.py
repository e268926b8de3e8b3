"""Reading and counting campaign metrics."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from mailramp.errors import found
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.validation import campaign_id_arg, object_id_arg
from mailramp.metrics.models import CampaignMetrics
from mailramp.metrics.repository import MetricsRepository


class MetricsService:
    """Per-campaign counters and rates."""

    def __init__(self, metrics: MetricsRepository, *, clock: Clock = utc_now) -> None:
        self._metrics = metrics
        self._clock = clock

    async def get_campaign_metrics(
        self, campaign_id: str, *, user_id: str | None = None
    ) -> CampaignMetrics:
        """A campaign's metrics. With `user_id`, only that user's campaign is found; without,
        any — for trusted in-process callers (CLI, db_manager, workers), never for a request."""
        campaign_id = campaign_id_arg(campaign_id)
        if user_id is None:
            metrics = await self._metrics.get_metrics_unscoped(campaign_id)
        else:
            owner = object_id_arg(user_id, field="user_id")
            metrics = await self._metrics.get_metrics(owner, campaign_id)
        return found(metrics, "campaign metrics", campaign_id)

    async def metrics_of(
        self, user_id: str, campaign_ids: Collection[str]
    ) -> dict[str, CampaignMetrics]:
        """The user's campaigns' metrics by campaign_id, in one query (list pages); a
        campaign of another user's is simply absent."""
        owner = object_id_arg(user_id, field="user_id")
        wanted = [campaign_id_arg(campaign_id) for campaign_id in campaign_ids]
        if not wanted:
            return {}
        found = await self._metrics.list_metrics(owner, wanted)
        return {metrics.campaign_id: metrics for metrics in found}

    async def count(self, campaign_id: str, deltas: Mapping[str, int]) -> CampaignMetrics:
        """Add to a campaign's counters; delivered and the rates follow."""
        return found(
            await self._metrics.increment_metrics(
                campaign_id_arg(campaign_id), deltas, at=self._clock()
            ),
            "campaign metrics",
            campaign_id,
        )
