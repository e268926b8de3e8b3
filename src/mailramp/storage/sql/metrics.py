"""The campaign_matrix documents on SQL: counters moved in the unit of work that appends an
event, and recomputed from the event log (`TALLIES` says which events each one counts)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailramp.metrics.models import CampaignMetrics, check_increments, derived_fields
from mailramp.storage.sql import tables
from mailramp.storage.sql.base import SqlBase
from mailramp.storage.sql.event_log import tallied
from mailramp.tracking.events import TALLIED_TYPES, TALLIES

T = tables.tracking
E = tables.events
MT = tables.metrics


class SqlMetrics(SqlBase):
    """MetricsRepository on SQL."""

    async def get_metrics(self, user_id: str, campaign_id: str) -> CampaignMetrics | None:
        metrics = tables.metrics
        return await self._read_one(
            CampaignMetrics,
            select(metrics).where(
                metrics.c.campaign_id == campaign_id, metrics.c.user_id == user_id
            ),
        )

    async def list_metrics(
        self, user_id: str, campaign_ids: Collection[str]
    ) -> list[CampaignMetrics]:
        metrics = tables.metrics
        query = select(metrics).where(
            metrics.c.user_id == user_id, metrics.c.campaign_id.in_(list(campaign_ids))
        )
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [CampaignMetrics.model_validate(dict(row)) for row in rows]

    async def get_metrics_unscoped(self, campaign_id: str) -> CampaignMetrics | None:
        metrics = tables.metrics
        return await self._read_one(
            CampaignMetrics, select(metrics).where(metrics.c.campaign_id == campaign_id)
        )

    async def recount_needed(self, *, since: datetime) -> list[str]:
        return []  # a change and its counters commit together: never short

    async def increment_metrics(
        self, campaign_id: str, deltas: Mapping[str, int], *, at: datetime
    ) -> CampaignMetrics | None:
        check_increments(deltas)
        metrics = tables.metrics
        async with self._write() as connection:
            if not await self._increment(connection, campaign_id, deltas, at):
                return None
            return await self._one(
                connection,
                CampaignMetrics,
                select(metrics).where(metrics.c.campaign_id == campaign_id),
            )

    async def counters_by_step(
        self, user_id: str, campaign_id: str
    ) -> dict[tuple[int, int], dict[str, int]]:
        # An email counts once per counter: the emails with at least one such event.
        statement = (
            select(
                T.c.step,
                T.c.variant,
                *(
                    func.count(func.distinct(case((tallied(tally), E.c.record_id)))).label(counter)
                    for counter, tally in TALLIES.items()
                ),
            )
            .select_from(
                T.outerjoin(E, and_(E.c.record_id == T.c._id, E.c.type.in_(TALLIED_TYPES)))
            )
            .where(T.c.campaign_id == campaign_id, T.c.user_id == user_id)
            .group_by(T.c.step, T.c.variant)
        )
        async with self._read() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return {
            (int(row["step"]), int(row["variant"])): {
                counter: int(row[counter]) for counter in TALLIES
            }
            for row in rows
        }

    async def recompute_metrics(self, campaign_id: str, *, now: datetime) -> CampaignMetrics | None:
        async with self._write() as connection:
            return await self._recompute(connection, campaign_id, now)

    async def _recompute(
        self, connection: AsyncConnection, campaign_id: str, now: datetime
    ) -> CampaignMetrics | None:
        # A counter counts people: those with at least one event it counts.
        statement = select(
            *(
                func.count(func.distinct(case((tallied(tally), E.c.recipient_email)))).label(
                    counter
                )
                for counter, tally in TALLIES.items()
            )
        ).where(E.c.campaign_id == campaign_id, E.c.type.in_(TALLIED_TYPES))
        counts = (await connection.execute(statement)).mappings().one()
        counters = {counter: int(counts[counter]) for counter in TALLIES}
        values = {**counters, **derived_fields(counters), "last_updated": now}
        result = await connection.execute(
            update(MT).where(MT.c.campaign_id == campaign_id).values(values)
        )
        if result.rowcount != 1:
            return None
        return await self._one(
            connection, CampaignMetrics, select(MT).where(MT.c.campaign_id == campaign_id)
        )
