"""The campaign_matrix documents on MongoDB: counters `$inc`-ed, derived fields written
with compare-and-set, and recomputation from the records."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument

from mailramp.metrics.models import (
    COUNTERS,
    CampaignMetrics,
    check_increments,
    derived_fields,
)
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import (
    METRICS,
    TRACKING,
    from_document,
    maybe_oid,
    oid,
)
from mailramp.tracking.events import COUNTED_BY


class MongoMetrics(MongoBase):
    """MetricsRepository on MongoDB."""

    async def get_metrics(self, user_id: str, campaign_id: str) -> CampaignMetrics | None:
        return await self._find_one(
            METRICS, CampaignMetrics, {"campaign_id": campaign_id, "user_id": oid(user_id)}
        )

    async def list_metrics(
        self, user_id: str, campaign_ids: Collection[str]
    ) -> list[CampaignMetrics]:
        owner = maybe_oid(user_id)
        if owner is None:
            return []
        query = {"user_id": owner, "campaign_id": {"$in": sorted(campaign_ids)}}
        found = [
            from_document(CampaignMetrics, document)
            async for document in self._db[METRICS].find(query)
        ]
        return [metrics for metrics in found if metrics is not None]

    async def get_metrics_unscoped(self, campaign_id: str) -> CampaignMetrics | None:
        return await self._find_one(METRICS, CampaignMetrics, {"campaign_id": campaign_id})

    async def increment_metrics(
        self, campaign_id: str, deltas: Mapping[str, int], *, at: datetime
    ) -> CampaignMetrics | None:
        check_increments(deltas)
        return await self._increment_metrics(campaign_id, deltas, at)

    async def _increment_metrics(
        self, campaign_id: str, deltas: Mapping[str, int], now: datetime
    ) -> CampaignMetrics | None:
        """`$inc` the counters (atomic on the server, so concurrent increments are never
        lost), then write the derived fields computed from the counters read back.

        Two writers may interleave between the `$inc` and the rates; the rates write is
        therefore guarded by the counters it was computed from (compare-and-set), and
        recomputed from a fresh read when the counters moved on meanwhile — the last
        writer leaves rates that match the final counters. False (None) when the campaign
        has no metrics document."""
        metrics = self._db[METRICS]
        increments = {name: int(delta) for name, delta in deltas.items()}
        document = await metrics.find_one_and_update(
            {"campaign_id": campaign_id},
            {"$inc": increments, "$set": {"last_updated": now}}
            if increments
            else {"$set": {"last_updated": now}},
            return_document=ReturnDocument.AFTER,
        )
        while document is not None:
            counters = {name: int(document.get(name, 0)) for name in COUNTERS}
            derived = derived_fields(counters)
            if all(document.get(name) == value for name, value in derived.items()):
                break
            guard = {"_id": document["_id"], **counters}
            updated = await metrics.find_one_and_update(
                guard, {"$set": derived}, return_document=ReturnDocument.AFTER
            )
            if updated is not None:
                document = updated
                break
            document = await metrics.find_one({"_id": document["_id"]})
        return from_document(CampaignMetrics, document)

    async def _counted(
        self, match: dict[str, Any], by: Any, *, per_person: bool = False
    ) -> list[dict[str, Any]]:
        """One pass over the matching records: each counter is how many have its field
        set, per value of `by` (None: all together); with `per_person`, how many people
        have at least one email with it set."""
        pipeline: list[dict[str, Any]] = [{"$match": match}]
        fields = {field: f"${field}" for field in COUNTED_BY.values()}
        if per_person:
            people: dict[str, Any] = {"_id": "$recipient_email"}
            people |= {field: {"$max": value} for field, value in fields.items()}
            pipeline.append({"$group": people})
        group: dict[str, Any] = {"_id": by}
        for counter, field in COUNTED_BY.items():
            group[counter] = {"$sum": {"$cond": [{"$ifNull": [f"${field}", False]}, 1, 0]}}
        pipeline.append({"$group": group})
        cursor = await self._db[TRACKING].aggregate(pipeline)
        return [row async for row in cursor]

    async def counters_by_step(
        self, user_id: str, campaign_id: str
    ) -> dict[tuple[int, int], dict[str, int]]:
        owner = maybe_oid(user_id)
        if owner is None:
            return {}
        match = {"campaign_id": campaign_id, "user_id": owner}
        by = {"step": {"$ifNull": ["$step", 1]}, "variant": {"$ifNull": ["$variant", 0]}}
        rows = await self._counted(match, by)
        return {
            (int(row["_id"]["step"]), int(row["_id"]["variant"])): {
                c: int(row[c]) for c in COUNTED_BY
            }
            for row in rows
        }

    async def recompute_metrics(self, campaign_id: str, *, now: datetime) -> CampaignMetrics | None:
        rows = await self._counted({"campaign_id": campaign_id}, None, per_person=True)
        counters = {counter: int(rows[0][counter]) if rows else 0 for counter in COUNTED_BY}
        # total_delivered is derived; the counters this leaves out of COUNTED_BY have none.
        full = {name: counters.get(name, 0) for name in COUNTERS}
        values = {**counters, **derived_fields(full), "last_updated": now}
        document = await self._db[METRICS].find_one_and_update(
            {"campaign_id": campaign_id},
            {"$set": values},
            return_document=ReturnDocument.AFTER,
        )
        return from_document(CampaignMetrics, document)
