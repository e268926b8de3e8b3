"""The campaign_matrix documents on MongoDB: counters `$inc`-ed, derived fields written
with compare-and-set, and recomputation from the event log (`TALLIES` says which events
each counter counts).

Recounting without transactions, and never over-counting. A writer changes the log (an
event, a record's first-of-kind field) and then `$inc`s the counters: two writes. A
recount that tallied the log between them, and then `$set` the counters, would have the
late `$inc` count that change a second time. So each document has a `recount_epoch`:

- a writer reads it *before* its change (`_metrics_epochs`) and `$inc`s only while it is
  unchanged (`_increment_metrics(…, epoch=…)`);
- a recount first moves it on, then tallies the log, then `$set`s the counters and moves
  it on again — only if nobody else moved it meanwhile (`recompute_metrics`).

A writer whose epoch moved on drops its `$inc` and marks the document `recount_due`
(recounting there and then, on a web request, would move the epoch under every other
writer in flight: a storm); a recount removes the mark in its first step, so a mark set
after that is left for the next. A writer that read the epoch after a recount's first
move but `$inc`s before its `$set` is overwritten by that `$set`, which counted its change
only if it was already in the log — at worst one short, never one over. Shorts (and those
a crash leaves between a change and its `$inc`) are repaired by the next recount: the
worker's reconciliation (sending/reconcile.py) recounts every campaign that is active,
counted lately or marked due. A recount that changes nothing leaves `last_updated` as it
was, so a finished campaign is not recounted again and again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple

import pymongo
from pymongo import ReturnDocument

from mailramp.campaigns.models import CampaignStatus
from mailramp.metrics.models import (
    COUNTERS,
    CampaignMetrics,
    check_increments,
    derived_fields,
)
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.client import LONG_OPERATION_SECONDS
from mailramp.storage.mongo.codec import (
    CAMPAIGNS,
    EVENTS,
    METRICS,
    TRACKING,
    from_document,
    maybe_oid,
    oid,
)
from mailramp.storage.mongo.upgrade import events_for_every_record
from mailramp.tracking.events import TALLIED_TYPES, TALLIES

EPOCH = "recount_epoch"
RECOUNT_DUE = "recount_due"


class _Unguarded:
    """No epoch read: an increment outside a change of the log (MetricsService.count)."""


UNGUARDED: Final = _Unguarded()
Epoch = int | None | _Unguarded
"""A campaign_matrix document's `recount_epoch` as a writer read it (None: never recounted)."""


RECOUNT_ATTEMPTS = 3


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
        return await self._increment_metrics(campaign_id, deltas, at, epoch=UNGUARDED)

    async def recount_needed(self, *, since: datetime) -> list[str]:
        # Active campaigns (a crash between a change and its `$inc` moves nothing on the
        # metrics document), any counted since `since` (one that completed meanwhile), and
        # any a writer marked due.
        active = self._db[CAMPAIGNS].find(
            {"status": CampaignStatus.ACTIVE.value}, {"campaign_id": 1, "_id": 0}
        )
        wanted = {str(document["campaign_id"]) async for document in active}
        counted = self._db[METRICS].find(
            {"$or": [{"last_updated": {"$gte": since}}, {RECOUNT_DUE: True}]},
            {"campaign_id": 1, "_id": 0},
        )
        wanted.update([str(document["campaign_id"]) async for document in counted])
        return sorted(wanted)

    async def _metrics_epochs(self, campaign_ids: Collection[str]) -> dict[str, Epoch]:
        """Each campaign's `recount_epoch`, read before a change whose counters follow it."""
        epochs: dict[str, Epoch] = dict.fromkeys(campaign_ids)
        cursor = self._db[METRICS].find(
            {"campaign_id": {"$in": sorted(epochs)}}, {"campaign_id": 1, EPOCH: 1}
        )
        async for document in cursor:
            epochs[str(document["campaign_id"])] = document.get(EPOCH)
        return epochs

    async def _increment_metrics(
        self, campaign_id: str, deltas: Mapping[str, int], now: datetime, *, epoch: Epoch
    ) -> CampaignMetrics | None:
        """`$inc` the counters (atomic on the server, so concurrent increments are never
        lost) while the document's `recount_epoch` is still `epoch` (a recount since then
        may have counted this change already: recount again instead, module docstring),
        then write the derived fields computed from the counters read back.

        Two writers may interleave between the `$inc` and the rates; the rates write is
        therefore guarded by the counters it was computed from (compare-and-set), and
        recomputed from a fresh read when the counters moved on meanwhile — the last
        writer leaves rates that match the final counters. False (None) when the campaign
        has no metrics document."""
        metrics = self._db[METRICS]
        increments = {name: int(delta) for name, delta in deltas.items()}
        where: dict[str, Any] = {"campaign_id": campaign_id}
        if not isinstance(epoch, _Unguarded):
            where[EPOCH] = epoch  # None matches a document never recounted
        document = await metrics.find_one_and_update(
            where,
            {"$inc": increments, "$set": {"last_updated": now}}
            if increments
            else {"$set": {"last_updated": now}},
            return_document=ReturnDocument.AFTER,
        )
        if document is None and not isinstance(epoch, _Unguarded):
            # Recounted since the epoch was read (or no such campaign): that recount may
            # have counted this change already; the next one, which the mark asks for, does.
            document = await metrics.find_one_and_update(
                {"campaign_id": campaign_id},
                {"$set": {RECOUNT_DUE: True}},
                return_document=ReturnDocument.AFTER,
            )
            return from_document(CampaignMetrics, document)
        while document is not None:
            counters = {name: int(document.get(name) or 0) for name in COUNTERS}
            derived = derived_fields(counters)
            missing = {name: 0 for name in COUNTERS if document.get(name) is None}
            if not missing and all(document.get(name) == value for name, value in derived.items()):
                break
            # Guarded by the counters exactly as read: a counter the document lacks (the
            # schema's own layout has 7 of them) is matched as missing, and filled with 0.
            guard = {"_id": document["_id"], **{name: document.get(name) for name in COUNTERS}}
            updated = await metrics.find_one_and_update(
                guard, {"$set": {**missing, **derived}}, return_document=ReturnDocument.AFTER
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
        metrics = self._db[METRICS]
        for _ in range(RECOUNT_ATTEMPTS):
            # Move the epoch on first: every writer that read the old one drops its `$inc`
            # (and marks the document due again; this recount takes the mark off).
            opened = await metrics.find_one_and_update(
                {"campaign_id": campaign_id},
                {"$inc": {EPOCH: 1}, "$unset": {RECOUNT_DUE: ""}},
                return_document=ReturnDocument.AFTER,
            )
            if opened is None:
                return None
            epoch = opened[EPOCH]
            values = await self._recount(campaign_id)
            if any(opened.get(name) != value for name, value in values.items()):
                values["last_updated"] = now  # unchanged counters leave it as it was
            document = await metrics.find_one_and_update(
                {"campaign_id": campaign_id, EPOCH: epoch},
                {"$set": values, "$inc": {EPOCH: 1}},
                return_document=ReturnDocument.AFTER,
            )
            if document is not None:
                return from_document(CampaignMetrics, document)
        # Overtaken by other recounts each time: the last of them stands.
        return await self.get_metrics_unscoped(campaign_id)

    async def _recount(self, campaign_id: str) -> dict[str, Any]:
        """The counters and derived fields the campaign's event log gives (under a long
        budget: a large campaign's log is read whole)."""
        with pymongo.timeout(LONG_OPERATION_SECONDS):
            await events_for_every_record(self._db, {"campaign_id": campaign_id})
            tallied = await self._tallied({"campaign_id": campaign_id})
        # A counter counts people: those with at least one event it counts.
        people: dict[str, set[str]] = {counter: set() for counter in TALLIES}
        for event in tallied:
            for counter, tally in TALLIES.items():
                if event.person is not None and tally.counts(event.type, machine=event.machine):
                    people[counter].add(event.person)
        counters = {counter: len(found) for counter, found in people.items()}
        # total_delivered is derived; the counters this leaves out of TALLIES have none.
        full = {name: counters.get(name, 0) for name in COUNTERS}
        return {**full, **derived_fields(full)}
