"""Tracking records, the event log and the counters it moves, on MongoDB.

Atomicity without a replica set (no transactions): every step of `record_event` is one
single-document operation, ordered so that what a crash can leave behind is only ever an
under-count that a recount (`recompute_metrics`, run by the worker's reconciliation)
repairs from the event log (what the counters count):

0. the suppression an event brings (a hard bounce, a complaint, an unsubscribe) is written
   first, since nothing after it could bring it back if a crash followed (the unique
   index refuses a second one); the campaign's `recount_epoch` is read (metrics.py);
1. the event is appended to `email_events` with its number; the `stopped` events of the
   emails its stop ends follow the stop;
2. for each first-of-its-kind field, `update_one({_id, field: None}, {$set: field})` — the
   record's own state change, atomic on one document, so of many concurrent duplicate hits
   exactly one matches;
3. the status change (`status $in status_from` in the filter);
4. only for the fields whose guarded update matched, the campaign_matrix counters are
   `$inc`-ed while the epoch is unchanged (one `find_one_and_update`), then the derived
   fields (delivered, rates) are written with the counters they were computed from in the
   filter, so a stale computation never overwrites a newer one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import (
    Collection,
    Mapping,
    Sequence,
)
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError

from mailramp.errors import DuplicateError
from mailramp.kit.types import Page
from mailramp.storage.mongo.codec import (
    CONVERSATION_MESSAGES,
    EVENTS,
    RECIPIENTS,
    SUPPRESSIONS,
    TRACKING,
    UNMATCHED,
    decode,
    from_document,
    maybe_oid,
    oid,
    to_document,
)
from mailramp.storage.mongo.metrics import MongoMetrics
from mailramp.storage.mongo.people import MongoPeople
from mailramp.storage.mongo.suppression import MongoSuppression
from mailramp.tracking.classify import FETCHES
from mailramp.tracking.events import (
    COUNTED_ON_FIRST_EMAIL,
    check_firsts,
    queued,
    sequence_stopped,
)
from mailramp.tracking.models import (
    EVENT_TIMESTAMPS,
    SETTLING,
    CampaignRecipient,
    ConversationMessage,
    EmailEvent,
    EmailTracking,
    EventType,
    TrackingStatus,
    UnmatchedInbound,
)
from mailramp.tracking.repository import (
    EventChange,
    RecipientQuery,
    SettledEvent,
    UnsettledEmail,
)

_NEWEST = (("received_at", -1), ("_id", -1))  # unmatched reports, newest first


def _duplicate_recipient(email: Any) -> DuplicateError:
    return DuplicateError("recipient_email", email, kind="recipient")


class MongoTracking(MongoSuppression, MongoPeople, MongoMetrics):
    """TrackingRepository on MongoDB."""

    async def insert_tracking(self, records: Sequence[EmailTracking]) -> int:
        if not records:
            return 0
        documents = [to_document(TRACKING, record) for record in records]
        # All or nothing without a transaction: refuse a batch holding a recipient the
        # campaign (or the batch) already has before writing anything; should a concurrent
        # insert win the race, the unique index refuses ours and the part of the batch
        # already written is removed again.
        seen: set[tuple[str, str, int]] = set()
        for document in documents:
            key = (document["campaign_id"], document["recipient_email"], document["step"])
            if key in seen:
                raise _duplicate_recipient(key[1])
            seen.add(key)
        for campaign_id, email, step in sorted(seen):
            existing = await self._db[TRACKING].find_one(
                {"campaign_id": campaign_id, "recipient_email": email, "step": step},
                {"recipient_email": 1},
            )
            if existing is not None:
                raise _duplicate_recipient(existing["recipient_email"])
        try:
            await self._db[TRACKING].insert_many(documents, ordered=True)
        except (BulkWriteError, DuplicateKeyError) as error:
            details: Mapping[str, Any] = error.details or {}
            # Ordered: the documents before the refused one were written; take them back.
            written = documents[: int(details.get("nInserted") or 0)]
            if written:
                await self._db[TRACKING].delete_many(
                    {"_id": {"$in": [document["_id"] for document in written]}}
                )
            raise await self._refused(details, documents) from None
        for record in records:
            person = CampaignRecipient.of(record)
            await self._add_people(
                record.campaign_id, record.user_id, [person.recipient_email], record.created_at
            )
            for name in EVENT_TIMESTAMPS:  # a person's first is their emails' earliest
                moment = getattr(record, name)
                if moment is not None:
                    await self._db[RECIPIENTS].update_one(
                        {
                            "campaign_id": record.campaign_id,
                            "recipient_email": record.recipient_email,
                        },
                        {"$min": {name: moment}},
                    )
        await self._append_events(queued(records))
        return len(documents)

    async def _refused(
        self, details: Mapping[str, Any], documents: Sequence[Mapping[str, Any]]
    ) -> DuplicateError:
        """The DuplicateError for a batch the unique indexes refused: the recipient, or a
        reused `_id` (a server names the index; the test double does not, so then the
        recipient's index is checked for another record holding the address)."""
        errors = details.get("writeErrors") or [details]
        first: Mapping[str, Any] = errors[0] if errors else {}
        index = first.get("index")
        refused: Mapping[str, Any] = (
            documents[index] if isinstance(index, int) and 0 <= index < len(documents) else {}
        )
        email = refused.get("recipient_email")
        text = str(first.get("errmsg") or "")
        pattern = set(first.get("keyPattern") or {})
        if "recipient_email" in text or "recipient_email" in pattern:
            return _duplicate_recipient(email)
        if "_id_" in text or pattern == {"_id"}:
            return DuplicateError("_id", str(refused.get("_id")))
        other = await self._db[TRACKING].find_one(
            {
                "campaign_id": refused.get("campaign_id"),
                "recipient_email": email,
                "_id": {"$ne": refused.get("_id")},
            },
            {"_id": 1},
        )
        if other is not None or not refused:
            return _duplicate_recipient(email)
        return DuplicateError("_id", str(refused.get("_id")))

    async def get_tracking(self, user_id: str, tracking_id: str) -> EmailTracking | None:
        record_id, owner = maybe_oid(tracking_id), maybe_oid(user_id)
        if record_id is None or owner is None:
            return None
        return await self._find_one(TRACKING, EmailTracking, {"_id": record_id, "user_id": owner})

    async def get_tracking_unscoped(self, tracking_id: str) -> EmailTracking | None:
        record_id = maybe_oid(tracking_id)
        if record_id is None:
            return None
        return await self._find_one(TRACKING, EmailTracking, {"_id": record_id})

    async def list_tracking(self, user_id: str, query: RecipientQuery) -> Page[EmailTracking]:
        owner = maybe_oid(user_id)
        # An id that is no ObjectId owns nothing: `_id: None` matches no document.
        found: dict[str, Any] = (
            {"campaign_id": query.campaign_id, "user_id": owner} if owner else {"_id": None}
        )
        if query.status is not None:
            found["status"] = TrackingStatus(query.status).value
        if query.step is not None:
            found["step"] = query.step
        if query.search:
            found["recipient_email"] = {"$regex": re.escape(query.search.lower())}
        order = [("scheduled_at", 1), ("_id", 1)]
        return await self._page(TRACKING, EmailTracking, found, order, query.offset, query.limit)

    async def export_tracking(
        self, user_id: str, campaign_id: str, *, after: tuple[str, int] | None, limit: int
    ) -> list[EmailTracking]:
        owner = maybe_oid(user_id)
        if owner is None:
            return []
        # Keyset on uq_email_tracking_campaign_id_recipient_email_step: the filter's
        # campaign equality and the (address, step) bound are that index's prefix and
        # range, and its order is the sort — no skip over what was read before, no sort in
        # memory.
        query: dict[str, Any] = {"campaign_id": campaign_id, "user_id": owner}
        if after is not None:
            email, step = after
            query["$or"] = [
                {"recipient_email": {"$gt": email}},
                {"recipient_email": email, "step": {"$gt": step}},
            ]
        cursor = (
            self._db[TRACKING].find(query).sort([("recipient_email", 1), ("step", 1)]).limit(limit)
        )
        records = [from_document(EmailTracking, document) async for document in cursor]
        return [record for record in records if record is not None]

    async def count_tracking_by_status(self, user_id: str, campaign_id: str) -> dict[str, int]:
        # As on SQL (and as the protocol says): statuses with no records are left out.
        owner = maybe_oid(user_id)
        if owner is None:
            return {}
        cursor = await self._db[TRACKING].aggregate(
            [
                {"$match": {"campaign_id": campaign_id, "user_id": owner}},
                {"$group": {"_id": "$status", "count": {"$sum": 1}}},
            ]
        )
        return {str(row["_id"]): int(row["count"]) async for row in cursor}

    async def find_tracking_by_message_ids(
        self, message_ids: Collection[str]
    ) -> list[EmailTracking]:
        if not message_ids:
            return []
        cursor = self._db[TRACKING].find({"message_id": {"$in": list(message_ids)}}).sort("_id", 1)
        found = [from_document(EmailTracking, document) async for document in cursor]
        return [record for record in found if record is not None]

    async def find_answers_by_message_ids(
        self, message_ids: Collection[str]
    ) -> list[ConversationMessage]:
        if not message_ids:
            return []
        cursor = self._db[CONVERSATION_MESSAGES].find(
            {"direction": "out", "message_id": {"$in": sorted(set(message_ids))}}
        )
        return [m async for d in cursor if (m := from_document(ConversationMessage, d))]

    async def record_answer_open(self, answer_id: str, *, at: datetime, human: bool) -> bool:
        key = maybe_oid(answer_id)
        if key is None:
            return False
        answers = self._db[CONVERSATION_MESSAGES]
        found = await answers.update_one(
            {"_id": key, "track_opens": True, "opened_at": None}, {"$set": {"opened_at": at}}
        )
        exists = found.matched_count or await answers.count_documents(
            {"_id": key, "track_opens": True}
        )
        if exists and human:
            await answers.update_one(
                {"_id": key, "human_opened_at": None}, {"$set": {"human_opened_at": at}}
            )
        return bool(exists)

    async def find_latest_sent_to(
        self, mailbox_id: str, recipient_email: str, *, since: datetime
    ) -> EmailTracking | None:
        mailbox = maybe_oid(mailbox_id)
        query = {"recipient_email": recipient_email.lower(), "sent_at": {"$gte": since}}
        document = await self._db[TRACKING].find_one(
            {"mailbox_id": mailbox, **query},
            sort=[("sent_at", -1), ("_id", -1)],
        )
        return from_document(EmailTracking, document)

    async def count_soft_bounces(
        self, user_id: str, recipient_email: str, *, since: datetime
    ) -> int:
        owner = maybe_oid(user_id)
        records = [
            document["_id"]
            async for document in self._db[TRACKING].find(
                {"user_id": owner, "recipient_email": recipient_email.lower()}, {"_id": 1}
            )
        ]
        if not records:
            return 0
        return int(
            await self._db[EVENTS].count_documents(
                {
                    "record_id": {"$in": records},
                    "type": EventType.BOUNCE.value,
                    "occurred_at": {"$gte": since},
                    "details.bounce": "soft",
                }
            )
        )

    async def add_unmatched(self, item: UnmatchedInbound) -> None:
        await self._db[UNMATCHED].insert_one(to_document(UNMATCHED, item))

    async def list_unmatched(
        self, user_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[UnmatchedInbound]:
        owner = {"user_id": maybe_oid(user_id)}
        return await self._page(UNMATCHED, UnmatchedInbound, owner, _NEWEST, offset, limit)

    async def record_event(self, event: EmailEvent, change: EventChange) -> dict[str, int]:
        firsts, suppress = change.firsts, change.suppress
        status_from, status_to = change.status_from, change.status_to
        check_firsts(firsts)
        record_id = oid(event.record_id)
        if change.lead_status is not None:
            # Checked and set first: a status changed meanwhile leaves nothing written.
            person = await self._db[TRACKING].find_one({"_id": record_id}, {"recipient_email": 1})
            if person is not None:
                await self._move_lead_status(
                    event.campaign_id,
                    person["recipient_email"],
                    change.lead_status,
                    event.occurred_at,
                )
        if change.received is not None:  # kept once: a repeat after a crash is refused
            await self._keep_received(change.received)
        # The order of the writes is the module docstring's: suppression, log, record,
        # counters.
        if suppress is not None:
            # Already suppressed: the unique index refuses it, the first reason stays.
            with contextlib.suppress(DuplicateKeyError):
                await self._db[SUPPRESSIONS].insert_one(to_document(SUPPRESSIONS, suppress))
        epochs = await self._metrics_epochs([event.campaign_id]) if firsts else {}
        await self._append_events([event])
        at = event.occurred_at
        deltas = await self._set_firsts(event, firsts)
        if status_to is not None:
            await self._db[TRACKING].update_one(
                {
                    "_id": record_id,
                    "status": {"$in": [TrackingStatus(status).value for status in status_from]},
                },
                {"$set": {"status": status_to.value, "updated_at": event.occurred_at}},
            )
        if change.stops_sequence or change.postpone_until is not None:
            person = await self._db[TRACKING].find_one({"_id": record_id}, {"recipient_email": 1})
            if person is not None and change.stops_sequence:
                stopped = await self._end_sequence(event.campaign_id, person["recipient_email"], at)
                await self._append_events(sequence_stopped(event, stopped))
            elif person is not None and change.postpone_until is not None:
                await self._postpone(
                    event.campaign_id, person["recipient_email"], change.postpone_until
                )
        if deltas:
            await self._increment_metrics(
                event.campaign_id, deltas, event.occurred_at, epoch=epochs[event.campaign_id]
            )
        return deltas

    async def _set_firsts(self, event: EmailEvent, firsts: Mapping[str, str]) -> dict[str, int]:
        """Set each of `firsts` (record timestamp → counter) at the event's moment where it
        is still empty; the counters that moved."""
        deltas: dict[str, int] = {}
        at = event.occurred_at
        for field, counter in firsts.items():
            # Only the first event of its kind sets the email's field, and only the first
            # of the person's emails to have it moves the counter: counters count people.
            # `{field: None}` matches a missing field too (documents written elsewhere).
            changed = await self._db[TRACKING].find_one_and_update(
                {"_id": oid(event.record_id), field: None},
                {"$set": {field: at, "updated_at": at}},
                projection={"recipient_email": 1, "step": 1},
            )
            if changed is None:
                continue
            if field in COUNTED_ON_FIRST_EMAIL:
                gained = changed.get("step", 1) == 1
            else:
                emails = [changed["recipient_email"]]
                gained = bool(
                    await self._first_for_people(
                        event.campaign_id, event.user_id, emails, field, at
                    )
                )
            if gained:
                deltas[counter] = deltas.get(counter, 0) + 1
        return deltas

    async def unsettled_emails(self, *, before: datetime, limit: int) -> list[UnsettledEmail]:
        # Served by the partial index ix_email_events_settling (only settling events).
        cursor = await self._db[EVENTS].aggregate(
            [
                {"$match": {"machine_reason": SETTLING, "occurred_at": {"$lte": before}}},
                {
                    "$group": {
                        "_id": {"user_id": "$user_id", "record_id": "$record_id"},
                        "since": {"$min": "$occurred_at"},
                    }
                },
                {"$sort": {"since": 1}},
                {"$limit": limit},
            ]
        )
        return [
            UnsettledEmail(
                str(row["_id"]["user_id"]), str(row["_id"]["record_id"]), decode(row["since"])
            )
            async for row in cursor
        ]

    async def list_fetches(
        self, user_id: str, record_id: str, *, since: datetime, limit: int
    ) -> list[EmailEvent]:
        owner, record = maybe_oid(user_id), maybe_oid(record_id)
        if owner is None or record is None:
            return []
        cursor = (
            self._db[EVENTS]
            .find(
                {
                    "record_id": record,
                    "user_id": owner,
                    "type": {"$in": sorted(kind.value for kind in FETCHES)},
                    "occurred_at": {"$gte": since},
                }
            )
            .sort([("occurred_at", 1), ("_id", 1)])
            .limit(limit)
        )
        events = [from_document(EmailEvent, document) async for document in cursor]
        return [event for event in events if event is not None]

    async def settle_events(
        self, record_id: str, settled: Sequence[SettledEvent]
    ) -> list[EmailEvent]:
        # Without transactions, in the module docstring's order: the verdict first (guarded
        # on `settling`, so of two workers exactly one decides it), then the record's
        # fields and the counters — a crash between leaves an under-count that
        # `recompute_metrics` repairs from the log.
        decided: list[EmailEvent] = []
        epochs = await self._metrics_epochs({item.event.campaign_id for item in settled})
        for item in settled:
            event = item.event
            verdict = await self._db[EVENTS].update_one(
                {"_id": oid(event.id), "record_id": oid(record_id), "machine_reason": SETTLING},
                {
                    "$set": {
                        "machine": event.machine,
                        "machine_reason": event.machine_reason,
                        "details": event.details,
                    }
                },
            )
            if verdict.modified_count != 1:
                continue  # decided meanwhile, by another worker
            decided.append(event)
            deltas = await self._set_firsts(event, item.firsts)
            if deltas:
                epoch = epochs[event.campaign_id]
                await self._increment_metrics(
                    event.campaign_id, deltas, event.occurred_at, epoch=epoch
                )
        return decided

    async def event_series(self, user_id: str, campaign_id: str) -> list[dict[str, Any]]:
        owner = maybe_oid(user_id)
        if owner is None:
            return []
        # Hours as date parts (UTC), which every server version and the test double group
        # by; `$dateTrunc` would need MongoDB 5.0 and is not in mongomock.
        hour = {
            "year": {"$year": "$occurred_at"},
            "month": {"$month": "$occurred_at"},
            "day": {"$dayOfMonth": "$occurred_at"},
            "hour": {"$hour": "$occurred_at"},
        }
        cursor = await self._db[EVENTS].aggregate(
            [
                {"$match": {"campaign_id": campaign_id, "user_id": owner}},
                {
                    "$group": {
                        "_id": {**hour, "type": "$type", "machine": "$machine"},
                        "count": {"$sum": 1},
                    }
                },
            ]
        )
        series = []
        async for row in cursor:
            key = row["_id"]
            series.append(
                {
                    "hour": datetime(
                        key["year"], key["month"], key["day"], key["hour"], tzinfo=UTC
                    ),
                    "type": key["type"],
                    "machine": bool(key["machine"]),
                    "count": int(row["count"]),
                }
            )
        series.sort(key=lambda point: (point["hour"], point["type"], point["machine"]))
        return series

    async def list_events(
        self, user_id: str, record_id: str, *, limit: int = 100
    ) -> list[EmailEvent]:
        owner, record = maybe_oid(user_id), maybe_oid(record_id)
        if owner is None or record is None:
            return []
        cursor = (
            self._db[EVENTS]
            .find({"record_id": record, "user_id": owner})
            .sort([("occurred_at", 1), ("_id", 1)])
            .limit(limit)
        )
        events = [from_document(EmailEvent, document) async for document in cursor]
        return [event for event in events if event is not None]
