"""Appending events to the log on MongoDB with their numbers: each user's counter in
`event_sequences` moved once per batch by the number of their events (atomic on the
server), then the events stored numbered after what it held."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from pymongo import ReturnDocument

from mailramp.storage.mongo.codec import EVENT_SEQUENCES, EVENTS, oid, to_document
from mailramp.tracking.events import numbered
from mailramp.tracking.models import EmailEvent


async def append_numbered(database: Any, events: Sequence[EmailEvent]) -> list[EmailEvent]:
    """Number and store `events`; the events as stored."""
    if not events:
        return []
    wanted = Counter(event.user_id for event in events)
    before: dict[str, int] = {}
    for user_id in sorted(wanted):
        counter = await database[EVENT_SEQUENCES].find_one_and_update(
            {"_id": oid(user_id)},
            {"$inc": {"last_seq": wanted[user_id]}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        before[user_id] = int(counter["last_seq"]) - wanted[user_id]
    stored = numbered(events, before)
    await database[EVENTS].insert_many([to_document(EVENTS, event) for event in stored])
    return stored
