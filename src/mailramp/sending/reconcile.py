"""Reconciliation: what a crash between two writes of one change can leave behind, where
a change is not one transaction (MongoDB, docs/deployment.md), repaired by the worker every
RECONCILE_INTERVAL:

- outcomes a dead worker recorded without finishing their consequences (the events, the
  next step, the end of the sequence): completed, once older than OWED_GRACE (a live
  worker completes its own within seconds, storing its outcomes until the database takes
  them);
- counters short of the event log: recounted for every campaign that may be (active, or
  counted since the last pass and a margin). A recount never over-counts, even beside
  concurrent writers (storage/mongo/metrics.py).

One process at a time reconciles (it takes the turn in the database). On SQL a change and
its counters commit together: there is nothing to repair, and the turn is never given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from mailramp.kit.clock import Clock, utc_now
from mailramp.metrics.models import COUNTERS, CampaignMetrics

log = logging.getLogger(__name__)

RECONCILE_INTERVAL = timedelta(minutes=10)
OWED_GRACE = timedelta(minutes=10)
RECOUNT_WINDOW = 2 * RECONCILE_INTERVAL
"""Campaigns counted within this long are recounted: a pass missed (the worker down, the
database away) does not leave one out."""


TURN = RECONCILE_INTERVAL - timedelta(minutes=1)
"""How long a process holds the reconciliation once it took it: every process tries each
interval, one of them does it (the same one, usually, a little early each time)."""


class ReconcileStore(Protocol):
    async def take_reconciliation_turn(self, *, now: datetime, until: datetime) -> bool: ...

    async def complete_owed_outcomes(self, *, before: datetime) -> int: ...

    async def recount_needed(self, *, since: datetime) -> list[str]: ...

    async def get_metrics_unscoped(self, campaign_id: str) -> CampaignMetrics | None: ...

    async def recompute_metrics(
        self, campaign_id: str, *, now: datetime
    ) -> CampaignMetrics | None: ...


@dataclass(frozen=True)
class Reconciled:
    """What one pass did: outcomes completed, campaigns recounted, and those whose counters
    the recount changed."""

    outcomes_completed: int = 0
    recounted: int = 0
    repaired: tuple[str, ...] = ()


class Reconciler:
    """One reconciliation pass (`run_once`), for the worker's periodic jobs."""

    def __init__(self, store: ReconcileStore, *, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    async def run_once(self) -> Reconciled:
        now = self._clock()
        if not await self._store.take_reconciliation_turn(now=now, until=now + TURN):
            return Reconciled()  # another process's turn, or nothing ever to reconcile
        completed = await self._store.complete_owed_outcomes(before=now - OWED_GRACE)
        if completed:
            log.warning("reconciliation: completed %d outcome(s) a worker left owed", completed)
        wanted = await self._store.recount_needed(since=now - RECOUNT_WINDOW)
        repaired = []
        for campaign_id in wanted:
            before = await self._store.get_metrics_unscoped(campaign_id)
            after = await self._store.recompute_metrics(campaign_id, now=now)
            changes = _changes(before, after)
            if changes:
                repaired.append(campaign_id)
                log.warning(
                    "reconciliation: campaign %s recounted from its event log: %s",
                    campaign_id,
                    ", ".join(changes),
                    extra={"campaign_id": campaign_id},
                )
        return Reconciled(completed, len(wanted), tuple(repaired))


def _changes(before: CampaignMetrics | None, after: CampaignMetrics | None) -> list[str]:
    """'total_sent 41 → 42' for each counter the recount changed."""
    if before is None or after is None:
        return []
    return [
        f"{name} {getattr(before, name)} → {getattr(after, name)}"
        for name in COUNTERS
        if getattr(before, name) != getattr(after, name)
    ]
