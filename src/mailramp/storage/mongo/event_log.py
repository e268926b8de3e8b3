"""The event log on MongoDB: appending events with their numbers, and reading a user's log
by cursor (as storage/sql/event_log.py).

Numbers come from the user's `event_sequences` document (`$inc`, one per user and append).
Without a transaction, the change, the number and the event are separate writes, made in
that order: two writers may store their events in the other order than their numbers for a
moment, so a reader by cursor reads up to the first missing number unless it is older
than a few seconds (tracking/service.py, `EVENT_SETTLE`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import (
    EVENT_SEQUENCES,
    EVENTS,
    TRACKING,
    from_document,
    maybe_oid,
    oid,
)
from mailramp.storage.mongo.numbering import append_numbered
from mailramp.tracking.events import ChangedEmail, taken_out
from mailramp.tracking.models import EmailEvent
from mailramp.tracking.repository import EventLogQuery


class MongoEventLog(MongoBase):
    """EventLogRepository on MongoDB, and the append that follows each change."""

    async def _append_events(self, events: Sequence[EmailEvent]) -> list[EmailEvent]:
        """Number and store `events`."""
        return await append_numbered(self._db, events)

    async def _delete_emails(self, query: Mapping[str, Any], reason: str, at: datetime) -> int:
        """Take the emails `query` selects out of the queue: the records go, a `cancelled`
        event of each says why (the log is append-only)."""
        tracking = self._db[TRACKING]
        found = [
            document
            async for document in tracking.find(
                dict(query), {"campaign_id": 1, "user_id": 1, "recipient_email": 1}
            )
        ]
        if not found:
            return 0
        deleted = await tracking.delete_many({**query, "_id": {"$in": [d["_id"] for d in found]}})
        await self._append_events(
            taken_out([changed_email(document) for document in found], reason, at)
        )
        return int(deleted.deleted_count)

    async def _change_emails(
        self, query: Mapping[str, Any], values: Mapping[str, Any]
    ) -> list[ChangedEmail]:
        """Apply `values` (a status and its `updated_at`) to the emails `query` selects; the
        emails it changed (read back by both, since another writer may change some of them
        between the read and the write)."""
        tracking = self._db[TRACKING]
        ids = [document["_id"] async for document in tracking.find(dict(query), {"_id": 1})]
        if not ids:
            return []
        await tracking.update_many({**query, "_id": {"$in": ids}}, {"$set": dict(values)})
        changed = tracking.find(
            {"_id": {"$in": ids}, "status": values["status"], "updated_at": values["updated_at"]},
            {"campaign_id": 1, "user_id": 1, "recipient_email": 1},
        )
        return [changed_email(document) async for document in changed]

    async def last_event_seq(self, user_id: str) -> int:
        owner = maybe_oid(user_id)
        found = await self._db[EVENT_SEQUENCES].find_one({"_id": owner}) if owner else None
        return int(found["last_seq"]) if found else 0

    async def list_event_log(self, user_id: str, query: EventLogQuery) -> list[EmailEvent]:
        wanted: dict[str, Any] = {"user_id": oid(user_id), "seq": {"$gt": query.after}}
        if query.campaign_id is not None:
            wanted["campaign_id"] = query.campaign_id
        if query.kinds:
            wanted["type"] = {"$in": [kind.value for kind in query.kinds]}
        moment: dict[str, datetime] = {}
        if query.since is not None:
            moment["$gte"] = query.since
        if query.until is not None:
            moment["$lt"] = query.until
        if moment:
            wanted["occurred_at"] = moment
        cursor = self._db[EVENTS].find(wanted).sort("seq", 1).limit(query.limit)
        events = [from_document(EmailEvent, document) async for document in cursor]
        return [event for event in events if event is not None]


def changed_email(document: Mapping[str, Any]) -> ChangedEmail:
    """The ChangedEmail a tracking document stands for."""
    return ChangedEmail(
        str(document["_id"]),
        str(document["campaign_id"]),
        str(document["user_id"]),
        str(document["recipient_email"]),
    )
