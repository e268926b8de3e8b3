"""The campaign_matrix documents on MongoDB: counters `$inc`-ed, derived fields written
with compare-and-set, and recomputation from the event log (`TALLIES` says which events
each counter counts)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from pymongo import ReturnDocument

from mailramp.metrics.models import (
    COUNTERS,
    CampaignMetrics,
    check_increments,
    derived_fields,
)
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import (
    EVENTS,
    METRICS,
    TRACKING,
    from_document,
    maybe_oid,
    oid,
)
from mailramp.storage.mongo.upgrade import events_for_every_record
from mailramp.tracking.events import TALLIED_TYPES, TALLIES


class _Tallied(NamedTuple):
    """One distinct (email, person, type, by a machine or not) of a campaign's events."""

    record_id: str
    person: str | None
    type: str
    machine: bool


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

    async def _tallied(self, match: dict[str, Any]) -> list[_Tallied]:
        """The matching events some counter counts, one per (email, person, type,
        machine)."""
        key = {"record": "$record_id", "person": "$recipient_email"}
        key |= {"type": "$type", "machine": "$machine"}
        pipeline = [
            {"$match": {**match, "type": {"$in": list(TALLIED_TYPES)}}},
            {"$group": {"_id": key}},
        ]
        cursor = await self._db[EVENTS].aggregate(pipeline)
        return [
            _Tallied(
                str(row["_id"]["record"]),
                row["_id"].get("person"),
                str(row["_id"]["type"]),
                bool(row["_id"].get("machine")),
            )
            async for row in cursor
        ]

    async def counters_by_step(
        self, user_id: str, campaign_id: str
    ) -> dict[tuple[int, int], dict[str, int]]:
        owner = maybe_oid(user_id)
        if owner is None:
            return {}
        match = {"campaign_id": campaign_id, "user_id": owner}
        where: dict[str, tuple[int, int]] = {}
        async for email in self._db[TRACKING].find(match, {"step": 1, "variant": 1}):
            where[str(email["_id"])] = (int(email.get("step", 1)), int(email.get("variant", 0)))
        # An email counts once per counter: the emails with at least one such event.
        emails: dict[tuple[int, int], dict[str, set[str]]] = {
            place: {counter: set() for counter in TALLIES} for place in set(where.values())
        }
        for event in await self._tallied(match):
            place = where.get(event.record_id)
            if place is None:
                continue
            for counter, tally in TALLIES.items():
                if tally.counts(event.type, machine=event.machine):
                    emails[place][counter].add(event.record_id)
        return {
            place: {counter: len(found) for counter, found in counted.items()}
            for place, counted in emails.items()
        }

    async def recompute_metrics(self, campaign_id: str, *, now: datetime) -> CampaignMetrics | None:
        await events_for_every_record(self._db, {"campaign_id": campaign_id})
        # A counter counts people: those with at least one event it counts.
        people: dict[str, set[str]] = {counter: set() for counter in TALLIES}
        for event in await self._tallied({"campaign_id": campaign_id}):
            for counter, tally in TALLIES.items():
                if event.person is not None and tally.counts(event.type, machine=event.machine):
                    people[counter].add(event.person)
        counters = {counter: len(found) for counter, found in people.items()}
        # total_delivered is derived; the counters this leaves out of TALLIES have none.
        full = {name: counters.get(name, 0) for name in COUNTERS}
        values = {**counters, **derived_fields(full), "last_updated": now}
        document = await self._db[METRICS].find_one_and_update(
            {"campaign_id": campaign_id},
            {"$set": values},
            return_document=ReturnDocument.AFTER,
        )
        return from_document(CampaignMetrics, document)
