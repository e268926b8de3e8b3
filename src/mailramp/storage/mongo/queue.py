"""The send queue on MongoDB: import, planning writes, leases, outcomes, lifecycle.
Mirrors storage/sql/queue.py method by method (the rules are in `sending/outcomes.py` and
`sending/lifecycle.py`).

Without transactions (a standalone server has none), each step is a single-document
atomic operation, and steps that touch several documents are ordered so that a crash in
between leaves nothing a worker or a reader would act on wrongly:

- Leases: `claim_due` leases one record per `find_one_and_update` whose filter is "due,
  pending, lease free, of an active campaign on a usable mailbox", sorted by
  `scheduled_at`: the server picks and leases in one step, so of any number of concurrent
  claimers each gets another record. Every write is majority-acknowledged and journaled,
  every read from the primary (MongoBase): a failover cannot roll a lease or a mark back
  and let a second worker send.
- Outcomes: per record, the bounce suppression first; then the status change, guarded by
  its open state (`sending`/`uncertain`), which also stores what the outcome still owes
  (`outcome_owed`: the result and its moment); then its consequences — the person's
  firsts, the next step, the end of the sequence, their events —, each idempotent; then
  the campaign's counters `$inc`-ed once per batch for the changes that matched; then the
  `outcome_owed` marks are removed. When an outage or a crash cuts this short, the worker
  stores the same results again (sending/worker.py: it keeps them until the database takes
  them): a record already changed but still owing this worker's same outcome completes its
  consequences (events not logged twice; the `stopped` and `cancelled` ones rebuilt from
  the records the cut-short attempt changed at its moment) and its campaign is recounted
  instead of incremented; a record owing nothing changes nothing. A retry is written only
  over the worker's own `sending` record, so a retry stored again never takes back a
  record another worker claimed since. A dead worker's marks are completed by the
  reconciliation (`complete_owed_outcomes`); the recount's backfill leaves owing records
  alone (their events come from the completion). A crash between a record's status
  change and its event leaves a moment the log misses: recounting (recompute_metrics)
  first gives each such moment its event (marked `backfilled`, storage/mongo/upgrade.py),
  then counts the log.
- Import: records are inserted with no `scheduled_at` (no worker claims them, no plan
  counts them) and scheduled once every batch is in and the plan succeeded; if the
  batches or the plan raise, the records this import inserted are deleted again — all but
  those of people a worker already holds or sent to, since the plan's writes make records
  due 64 at a time and a later write may fail (`_take_back`). A crash mid-import leaves its
  records pending and unscheduled: never sent, picked up by the next import or re-plan of
  the campaign (both schedule every pending record), and expired with the rest at the
  campaign's end.
- Campaign state (active, mailbox usable) lives in other collections: the claim reads the
  ids of active campaigns and usable mailboxes first (they are few) and filters with `$in`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import (
    Awaitable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.campaigns.repository import PendingSchedule, PlanFunction, Slot
from mailramp.errors import DatabaseUnavailableError
from mailramp.mailboxes.models import MailboxStatus
from mailramp.sending import lifecycle, outcomes
from mailramp.sending import models as send_models
from mailramp.sending.heartbeats import WorkerHeartbeat
from mailramp.sending.repository import Lease, RecipientBatches
from mailramp.storage.mongo.codec import (
    CAMPAIGNS,
    EVENTS,
    HEARTBEATS,
    MAILBOXES,
    META,
    OWED,
    RECIPIENTS,
    TRACKING,
    WARMUP,
    decode,
    encode,
    from_document,
    maybe_oid,
    oid,
    to_document,
)
from mailramp.storage.mongo.event_log import changed_email
from mailramp.storage.mongo.metrics import MongoMetrics
from mailramp.storage.mongo.people import UNSENT, MongoPeople
from mailramp.storage.mongo.suppression import MongoSuppression
from mailramp.tracking.events import (
    COUNTED_ON_FIRST_EMAIL,
    ChangedEmail,
    queued,
    state_events,
)
from mailramp.tracking.models import (
    EmailEvent,
    EmailTracking,
    EventType,
    TrackingStatus,
)

log = logging.getLogger(__name__)

PENDING = TrackingStatus.PENDING.value
WAITING = TrackingStatus.WAITING.value
CANCELLED = TrackingStatus.CANCELLED.value


SENDING = TrackingStatus.SENDING.value


DUPLICATE_KEY = 11000


def _object_ids(values: Iterable[str]) -> list[ObjectId]:
    """The ObjectIds among `values` (an id that is not one matches nothing, as on SQL)."""
    return [ObjectId(value) for value in values if ObjectId.is_valid(value)]


def _lease_free(now: datetime) -> dict[str, Any]:
    return {"$or": [{"lease_expires_at": None}, {"lease_expires_at": {"$lt": now}}]}


async def _in_chunks(writes: Iterable[Awaitable[Any]]) -> None:
    """Await `writes`, WRITE_CONCURRENCY at a time."""
    chunk: list[Awaitable[Any]] = []
    for write in writes:
        chunk.append(write)
        if len(chunk) >= WRITE_CONCURRENCY:
            await asyncio.gather(*chunk)
            chunk = []
    if chunk:
        await asyncio.gather(*chunk)


def _inserted_ids(documents: Sequence[dict[str, Any]], refused: Collection[int]) -> list[ObjectId]:
    """The ids of `documents` an unordered insert_many stored (all but the `refused` indexes)."""
    return [document["_id"] for n, document in enumerate(documents) if n not in refused]


OWED_BATCH = 500


def _owed(result: send_models.SendResult, at: datetime, by: str | None) -> dict[str, Any]:
    following = result.next_step
    return {
        "at": at,
        "by": by,  # the worker that reported it: only its own repeat completes it
        "outcome": result.outcome.value,
        "campaign_id": result.campaign_id,
        "user_id": result.user_id,
        "recipient_email": result.recipient_email,
        "error": result.error,
        "retry_at": result.retry_at,
        "message_id": result.message_id,
        "attempts": result.attempts,
        "next_step": None
        if following is None
        else {
            "step": following.step,
            "not_before": following.not_before,
            "mailbox_id": following.mailbox_id,
        },
    }


def _result_of(record_id: str, owed: Mapping[str, Any]) -> send_models.SendResult:
    """The SendResult an `outcome_owed` was written for."""
    following = owed.get("next_step")
    return send_models.SendResult(
        record_id=record_id,
        campaign_id=str(owed["campaign_id"]),
        user_id=str(owed["user_id"]),
        recipient_email=str(owed["recipient_email"]),
        outcome=send_models.Outcome(owed["outcome"]),
        error=owed.get("error"),
        retry_at=decode(owed.get("retry_at")),
        message_id=owed.get("message_id"),
        attempts=owed.get("attempts"),
        next_step=None
        if following is None
        else send_models.NextStep(
            step=int(following["step"]),
            not_before=decode(following["not_before"]),
            mailbox_id=str(following["mailbox_id"]),
        ),
    )


WRITE_CONCURRENCY = 64

"""How many single-document writes (re-planning) are in flight at once: enough to keep a
server busy, well inside PyMongo's default pool of 100 connections."""


class MongoQueue(MongoSuppression, MongoPeople, MongoMetrics):
    """SendingRepository and CampaignQueue on MongoDB."""

    async def import_recipients(
        self, campaign: Campaign, batches: RecipientBatches, *, plan: PlanFunction
    ) -> send_models.ImportCounts:
        accepted = duplicates = suppressed = 0
        inserted: list[ObjectId] = []
        started = campaign.updated_at  # then each batch's own time
        tracking = self._db[TRACKING]
        try:
            async for batch in batches:
                if not batch:
                    continue
                started = batch[0].created_at
                emails = {record.recipient_email for record in batch}
                blocked = await self.suppressed_among(campaign.user_id, emails)
                documents = [
                    # Unscheduled until the plan below: invisible to workers and plans.
                    {**to_document(TRACKING, record), "scheduled_at": None}
                    for record in batch
                    if record.recipient_email not in blocked
                ]
                firsts = [n for n, document in enumerate(documents) if document["step"] == 1]
                suppressed += sum(record.step == 1 for record in batch) - len(firsts)
                if not documents:
                    continue
                refused: set[int] = set()
                try:
                    await tracking.insert_many(documents, ordered=False)
                except BulkWriteError as error:
                    errors = error.details.get("writeErrors", [])
                    if any(e.get("code") != DUPLICATE_KEY for e in errors):
                        inserted += _inserted_ids(documents, {e["index"] for e in errors})
                        raise
                    refused = {int(e["index"]) for e in errors}
                inserted += _inserted_ids(documents, refused)
                people = [documents[n]["recipient_email"] for n in firsts if n not in refused]
                await self._add_people(
                    campaign.campaign_id, campaign.user_id, people, batch[0].created_at
                )
                kept = [record for record in batch if record.recipient_email not in blocked]
                await self._append_events(
                    queued([record for n, record in enumerate(kept) if n not in refused])
                )
                accepted += len(people)
                duplicates += len(firsts) - len(people)
            # The plan may refuse (PlanError) before any record is scheduled.
            await self._schedule_pending(campaign.campaign_id, plan)
        except BaseException:
            await self._take_back(campaign, inserted, started)
            raise
        total = await tracking.count_documents({"campaign_id": campaign.campaign_id, "step": 1})
        await self._db[CAMPAIGNS].update_one(
            {"campaign_id": campaign.campaign_id}, {"$set": {"total_recipients": total}}
        )
        return send_models.ImportCounts(
            accepted=accepted, duplicates=duplicates, suppressed=suppressed, total_recipients=total
        )

    async def _take_back(
        self, campaign: Campaign, inserted: Sequence[ObjectId], at: datetime
    ) -> None:
        """All or nothing, as far as nothing left: take back the records a failed import
        inserted, and their people — except everyone one of whose emails a worker already
        holds or sent (the plan is written 64 records at a time, and a worker may claim
        the first ones before a later write fails): those stay, whole, as sent."""
        tracking = self._db[TRACKING]
        untouched = {"status": {"$in": UNSENT}, "lease_owner": None}
        for start in range(0, len(inserted), 1000):
            chunk = list(inserted[start : start + 1000])
            documents = [
                document
                async for document in tracking.find(
                    {"_id": {"$in": chunk}}, {"recipient_email": 1, "status": 1, "lease_owner": 1}
                )
            ]
            held = {
                document["recipient_email"]
                for document in documents
                if document.get("status") not in UNSENT or document.get("lease_owner")
            }
            ids = [d["_id"] for d in documents if d["recipient_email"] not in held]
            # The filter repeats "untouched": a record leased since the read above stays.
            await self._delete_emails({"_id": {"$in": ids}, **untouched}, "import_refused", at)
            for email in sorted({d["recipient_email"] for d in documents} - held):
                who = {"campaign_id": campaign.campaign_id, "recipient_email": email}
                if await tracking.find_one(who, {"_id": 1}) is None:
                    await self._db[RECIPIENTS].delete_one(who)
            if held:
                log.warning(
                    "campaign %s: a failed import keeps %d recipient(s) a worker already "
                    "sent to or holds",
                    campaign.campaign_id,
                    len(held),
                )

    async def _schedule_pending(self, campaign_id: str, plan: PlanFunction) -> int:
        tracking = self._db[TRACKING]
        # ObjectIds grow with time, so ordering by _id keeps the import order.
        cursor = tracking.find(
            {"campaign_id": campaign_id, "step": 1, "status": PENDING},
            {"_id": 1, "recipient_email": 1, "timezone": 1},
        ).sort([("_id", 1)])
        rows, zones = [], []
        async for document in cursor:
            rows.append((document["_id"], document["recipient_email"]))
            zones.append(document.get("timezone"))
        slots = list(plan(zones))  # raises before anything is written
        if len(slots) != len(rows):
            raise ValueError(f"the plan has {len(slots)} slots for {len(rows)} records")
        await _in_chunks(
            tracking.update_one(
                {"_id": record_id, "status": PENDING},
                {
                    "$set": {
                        "scheduled_at": slot.at,
                        "mailbox_id": oid(slot.mailbox_id),
                        "next_attempt_at": None,
                    }
                },
            )
            for (record_id, _), slot in zip(rows, slots, strict=True)
        )
        await _in_chunks(
            tracking.update_one(
                {
                    "campaign_id": campaign_id,
                    "recipient_email": email,
                    "step": step,
                    "status": WAITING,
                },
                {"$set": {"scheduled_at": moment, "mailbox_id": oid(slot.mailbox_id)}},
            )
            for (_, email), slot in zip(rows, slots, strict=True)
            for step, moment in slot.follow_ups
        )
        return len(rows)

    async def pending_schedule(self, user_id: str, campaign_id: str) -> PendingSchedule:
        owner = maybe_oid(user_id)
        if owner is None:
            return PendingSchedule(0)
        query = {"campaign_id": campaign_id, "user_id": owner, "status": {"$in": UNSENT}}
        count = int(await self._db[TRACKING].count_documents(query))
        moment = {"scheduled_at": 1}
        ends = [
            await self._db[TRACKING].find_one(query, moment, sort=[("scheduled_at", way)])
            for way in (1, -1)
        ]
        first, last = (decode(end.get("scheduled_at")) if end else None for end in ends)
        firsts = int(await self._db[TRACKING].count_documents({**query, "step": 1}))
        return PendingSchedule(count, first, last, firsts)

    async def pending_slots(self, user_id: str, campaign_id: str) -> list[Slot]:
        owner = maybe_oid(user_id)
        if owner is None:
            return []
        query = {
            "campaign_id": campaign_id,
            "user_id": owner,
            "status": {"$in": UNSENT},
            "scheduled_at": {"$ne": None},
        }
        cursor = self._db[TRACKING].find(query, {"mailbox_id": 1, "scheduled_at": 1, "step": 1})
        return [
            Slot(
                decode(document["mailbox_id"]),
                decode(document["scheduled_at"]),
                step=int(document.get("step", 1)),
            )
            async for document in cursor
        ]

    async def step_emails(self, campaign_id: str, step: int) -> list[EmailTracking]:
        query = {"campaign_id": campaign_id, "step": step}
        cursor = self._db[TRACKING].find(query).sort([("_id", 1)])
        emails = [from_document(EmailTracking, document) async for document in cursor]
        return [email for email in emails if email is not None]

    async def highest_step(self, campaign_id: str) -> int:
        found = await self._db[TRACKING].find_one(
            {"campaign_id": campaign_id}, {"step": 1}, sort=[("step", -1)]
        )
        return int(found.get("step", 1)) if found else 1

    async def remove_step(
        self, campaign_id: str, step: int, *, next_step: int | None, now: datetime
    ) -> int:
        tracking = self._db[TRACKING]
        removed = {"campaign_id": campaign_id, "step": step}
        due = {
            document["recipient_email"]: document["scheduled_at"]
            async for document in tracking.find(
                {**removed, "status": PENDING}, {"recipient_email": 1, "scheduled_at": 1}
            )
        }
        # Out of the queue first (no worker claims them after this), then the next steps
        # due in their place, then gone: a crash between leaves nothing sent twice.
        await tracking.update_many(
            {**removed, "status": {"$in": UNSENT}},
            {"$set": {"status": CANCELLED, "lease_owner": None, "lease_expires_at": None}},
        )
        if next_step is not None:
            for email, moment in due.items():
                await tracking.update_one(
                    {
                        "campaign_id": campaign_id,
                        "recipient_email": email,
                        "step": next_step,
                        "status": WAITING,
                    },
                    {"$set": {"status": PENDING, "scheduled_at": moment}},
                )
        return await self._delete_emails({**removed, "status": CANCELLED}, "step_removed", now)

    async def replan_pending(self, campaign: Campaign, *, plan: PlanFunction) -> int:
        return await self._schedule_pending(campaign.campaign_id, plan)

    async def planned_times_for_mailbox(
        self, mailbox_id: str, *, exclude_campaign_id: str, start: datetime, end: datetime
    ) -> list[datetime]:
        if not ObjectId.is_valid(mailbox_id):
            return []
        tracking = self._db[TRACKING]
        mailbox = oid(mailbox_id)
        window = {"$gte": start, "$lt": end}
        queries: list[tuple[str, dict[str, Any]]] = []
        for count in lifecycle.DAILY_LIMIT_COUNTS:
            query = {
                "mailbox_id": mailbox,
                "status": {"$in": list(count.statuses)},
                count.moment: window,
            }
            if count.other_campaigns_only:
                query["campaign_id"] = {"$ne": exclude_campaign_id}
            queries.append((count.moment, query))
        moments: list[datetime] = []
        for field, query in queries:
            async for document in tracking.find(query, {field: 1, "_id": 0}):
                moment = decode(document.get(field))
                if isinstance(moment, datetime):
                    moments.append(moment)
        return moments

    async def cancel_pending(self, campaign_id: str, *, now: datetime) -> int:
        cancelled = await self._change_emails(
            {"campaign_id": campaign_id, "status": {"$in": UNSENT}},
            lifecycle.cancelled_pending(now),
        )
        await self._append_events(state_events(cancelled, EventType.CANCELLED, now))
        return len(cancelled)

    async def resend_uncertain(self, user_id: str, campaign_id: str, *, now: datetime) -> int:
        queued = await self._change_emails(
            {
                "campaign_id": campaign_id,
                "user_id": oid(user_id),
                "status": TrackingStatus.UNCERTAIN.value,
            },
            {
                "status": PENDING,
                "scheduled_at": now,
                "next_attempt_at": None,
                "lease_owner": None,
                "lease_expires_at": None,
                "updated_at": now,
            },
        )
        await self._append_events(state_events(queued, EventType.QUEUED, now, {"resend": True}))
        return len(queued)

    async def run_lifecycle(self, *, now: datetime) -> send_models.LifecycleReport:
        campaigns = self._db[CAMPAIGNS]
        uncertain = await self._change_emails(
            {"status": SENDING, "lease_expires_at": {"$lt": now}}, lifecycle.lease_expired(now)
        )
        await self._append_events(
            state_events(uncertain, EventType.UNCERTAIN, now, {"source": "lease_expired"})
        )
        activated = await campaigns.update_many(
            {"status": CampaignStatus.SCHEDULED.value, "start_time": {"$lte": now}},
            {"$set": lifecycle.campaign_started(now)},
        )
        # Sends due inside the window may still go out for EXPIRY_GRACE after it.
        ended = await self._campaign_ids(
            {
                "status": CampaignStatus.ACTIVE.value,
                "end_time": {"$lte": now - send_models.EXPIRY_GRACE},
            }
        )
        expired_records = 0
        if ended:
            expired = await self._change_emails(
                {"status": {"$in": UNSENT}, "campaign_id": {"$in": sorted(ended)}},
                lifecycle.window_closed(now),
            )
            await self._append_events(state_events(expired, EventType.EXPIRED, now))
            expired_records = len(expired)
        completed = await self._complete_finished(now)
        return send_models.LifecycleReport(
            activated=int(activated.matched_count),
            completed=completed,
            expired_records=expired_records,
            uncertain_records=len(uncertain),
        )

    async def _complete_finished(self, now: datetime) -> int:
        """Complete active campaigns with nothing left to send: past their end, or with
        recipients all of whom reached a final state."""
        tracking, campaigns = self._db[TRACKING], self._db[CAMPAIGNS]
        active: dict[str, datetime | None] = {}
        async for document in campaigns.find(
            {"status": CampaignStatus.ACTIVE.value}, {"campaign_id": 1, "end_time": 1}
        ):
            active[str(document["campaign_id"])] = decode(document.get("end_time"))
        if not active:
            return 0
        unfinished = set(
            await tracking.distinct(
                "campaign_id",
                {
                    "campaign_id": {"$in": sorted(active)},
                    "status": {"$in": list(lifecycle.UNFINISHED_STATES)},
                },
            )
        )
        completed = 0
        for campaign_id in sorted(set(active) - unfinished):
            end = active[campaign_id]
            past_end = end is not None and end <= now
            if not past_end and await tracking.find_one({"campaign_id": campaign_id}) is None:
                continue  # before its end with no recipients yet: recipients may still come
            # Guarded by the status, so a pause or cancel meanwhile wins.
            result = await campaigns.update_one(
                {"campaign_id": campaign_id, "status": CampaignStatus.ACTIVE.value},
                {"$set": lifecycle.campaign_completed(now)},
            )
            completed += int(result.matched_count)
        return completed

    async def _campaign_ids(self, query: dict[str, Any]) -> set[str]:
        cursor = self._db[CAMPAIGNS].find(query, {"campaign_id": 1, "_id": 0})
        return {str(document["campaign_id"]) async for document in cursor}

    async def _usable_mailboxes(self) -> list[ObjectId]:
        """The mailboxes that can send: active and linked."""
        cursor = self._db[MAILBOXES].find(
            {"status": MailboxStatus.ACTIVE.value, "unlinked_at": None}, {"_id": 1}
        )
        return [document["_id"] async for document in cursor]

    async def _due_query(self, now: datetime, campaigns: dict[str, Any]) -> dict[str, Any] | None:
        """The filter of records a worker may lease now: pending, due, with no live lease,
        on a mailbox that can send, of a campaign that matches `campaigns`; None when no
        campaign or no mailbox qualifies."""
        campaign_ids = await self._campaign_ids(campaigns)
        if not campaign_ids:
            return None
        mailboxes = await self._usable_mailboxes()
        if not mailboxes:
            return None
        return {
            "status": PENDING,
            "scheduled_at": {"$lte": now},
            **_lease_free(now),
            "campaign_id": {"$in": sorted(campaign_ids)},
            "mailbox_id": {"$in": mailboxes},
        }

    async def sequence_emails(self, campaign_id: str, recipient_email: str) -> list[EmailTracking]:
        cursor = (
            self._db[TRACKING]
            .find({"campaign_id": campaign_id, "recipient_email": recipient_email})
            .sort([("step", 1)])
        )
        emails = [from_document(EmailTracking, document) async for document in cursor]
        return [email for email in emails if email is not None]

    async def claim_due(self, lease: Lease, *, limit: int) -> list[EmailTracking]:
        worker_id, now, lease_until = lease.worker_id, lease.now, lease.until
        if limit <= 0:
            return []
        due = await self._due_query(now, {"status": CampaignStatus.ACTIVE.value})
        if due is None:
            return []
        tracking = self._db[TRACKING]
        held = {"lease_owner": worker_id, "lease_expires_at": lease_until, "updated_at": now}
        claimed: list[EmailTracking] = []
        while len(claimed) < limit:
            # The server picks the earliest claimable record and leases it in one step:
            # of many concurrent claimers each gets another record (none reads candidates
            # the others race for), and a record leased meanwhile no longer matches.
            document = await tracking.find_one_and_update(
                due,
                {"$set": held},
                # Only the index's own order (after its equality and $in keys): a tie-break
                # on _id would make the server sort every due record in memory per claim.
                sort=[("scheduled_at", 1)],
                return_document=ReturnDocument.AFTER,
            )
            record = from_document(EmailTracking, document)
            if record is None:
                break
            claimed.append(record)
        return claimed

    async def queue_depth(self, *, now: datetime) -> send_models.QueueDepth:
        # What the next worker pass would claim: its lifecycle step first starts campaigns
        # whose start_time came and expires those past end_time, so count those as it will
        # see them. The count walks ix_email_tracking_status_scheduled_at over
        # (status = 'pending', scheduled_at <= now); `sending` is the (status) prefix.
        tracking = self._db[TRACKING]
        startable = {
            "status": {"$in": [CampaignStatus.ACTIVE.value, CampaignStatus.SCHEDULED.value]},
            "start_time": {"$lte": now},
            "end_time": {
                "$gt": now - send_models.EXPIRY_GRACE
            },  # sends due in the window still go out
        }
        due_query = await self._due_query(now, startable)
        due = 0 if due_query is None else await tracking.count_documents(due_query)
        sending = await tracking.count_documents({"status": SENDING})
        return send_models.QueueDepth(due=int(due), sending=int(sending))

    async def start_sending(self, lease: Lease, message_ids: dict[str, str]) -> set[str]:
        worker_id, now, lease_until = lease.worker_id, lease.now, lease.until
        if not message_ids:
            return set()
        tracking = self._db[TRACKING]
        wanted = {
            ObjectId(record_id): message_id
            for record_id, message_id in message_ids.items()
            if ObjectId.is_valid(record_id)
        }
        ids = list(wanted)
        held = {"lease_owner": worker_id, "status": PENDING}
        leased: list[tuple[ObjectId, str]] = [
            (document["_id"], str(document["campaign_id"]))
            async for document in tracking.find(
                {"_id": {"$in": ids}, **held}, {"_id": 1, "campaign_id": 1}
            )
        ]
        # A pause or cancel after the claim stops the send here.
        campaign_ids = sorted({campaign_id for _, campaign_id in leased})
        active = (
            await self._campaign_ids(
                {"campaign_id": {"$in": campaign_ids}, "status": CampaignStatus.ACTIVE.value}
            )
            if campaign_ids
            else set()
        )
        for record_id, campaign_id in leased:
            if campaign_id not in active:
                continue
            await tracking.update_one(
                {"_id": record_id, **held},
                {
                    "$set": {
                        "status": SENDING,
                        "message_id": wanted[record_id],
                        "lease_expires_at": lease_until,
                        "updated_at": now,
                    },
                    "$inc": {"attempts": 1},
                },
            )
        # Which records this worker now holds in `sending`: only those may leave.
        cursor = tracking.find(
            {"_id": {"$in": ids}, "lease_owner": worker_id, "status": SENDING}, {"_id": 1}
        )
        return {str(document["_id"]) async for document in cursor}

    async def record_results(
        self,
        results: Sequence[send_models.SendResult],
        *,
        now: datetime,
        worker_id: str | None = None,
    ) -> None:
        if not results:
            return
        tracking = self._db[TRACKING]
        epochs = await self._metrics_epochs({result.campaign_id for result in results})
        deltas: dict[str, Counter[str]] = defaultdict(Counter)
        recount: set[str] = set()
        done: dict[datetime, list[ObjectId]] = defaultdict(list)
        for result in results:
            if not ObjectId.is_valid(result.record_id):
                continue
            record_id = oid(result.record_id)
            # The suppression first: once the record changed, a repeat of this report
            # changes nothing, so one written after could be lost to a crash for good.
            suppression = outcomes.suppression_for(result, now)
            if suppression is not None:
                await self._suppress(suppression)
            # The record's own state change guards everything counted for it; it also
            # says what is owed until the consequences below have all landed.
            guard: dict[str, Any] = {
                "_id": record_id,
                "status": {"$in": outcomes.states_it_may_leave(result)},
            }
            if worker_id is not None and outcomes.needs_own_lease(result):
                guard["lease_owner"] = worker_id
            document = await tracking.find_one_and_update(
                guard,
                {
                    "$set": {
                        **encode(TRACKING, outcomes.outcome_values(result, now)),
                        OWED: _owed(result, now, worker_id),
                    }
                },
                projection={"campaign_id": 1, "step": 1},
            )
            if document is not None:
                gained = await self._consequences(result, document, now, first=True)
                deltas[result.campaign_id].update(gained)
                done[now].append(record_id)
                continue
            # Recorded before — by an earlier attempt of this same report, cut short by an
            # outage or a crash? Then complete what it owes (a repeat finds nothing).
            mine = {"_id": record_id, f"{OWED}.outcome": result.outcome.value}
            if worker_id is not None:
                mine[f"{OWED}.by"] = worker_id
            owed = await tracking.find_one(mine, {"campaign_id": 1, "step": 1, OWED: 1})
            if owed is not None:
                at = decode(owed[OWED]["at"])
                await self._consequences(result, owed, at, first=False)
                recount.add(result.campaign_id)
                done[at].append(record_id)
        # Counters last: `$inc` once per campaign for the changes that matched above (the
        # metrics document's own increment, MongoMetrics._increment_metrics: `$inc` while
        # no recount intervened, then the rates compare-and-set from the counters read
        # back). A completed earlier attempt may or may not have counted: recount those.
        for campaign_id in sorted(set(deltas) - recount):
            increments = {name: n for name, n in deltas[campaign_id].items() if n}
            if increments:
                epoch = epochs[campaign_id]
                await self._increment_metrics(campaign_id, increments, now, epoch=epoch)
        for campaign_id in sorted(recount):
            await self.recompute_metrics(campaign_id, now=now)
        for at, record_ids in done.items():
            await tracking.update_many(
                {"_id": {"$in": record_ids}, f"{OWED}.at": at}, {"$unset": {OWED: ""}}
            )

    async def _consequences(
        self,
        result: send_models.SendResult,
        document: Mapping[str, Any],
        at: datetime,
        *,
        first: bool,
    ) -> Counter[str]:
        """What a recorded outcome brings beside the record's own fields: the person's
        firsts (the counters they gained), the next step due, the end of the sequence and
        the events of all of it. Each step is idempotent, so an attempt cut short is
        completed by running it again (`first=False`: events already logged are not
        logged twice)."""
        campaign_id = str(document["campaign_id"])
        events = outcomes.outcome_events(result, at)
        if result.outcome is send_models.Outcome.RETRY:
            cancelled = await self._cancel_retry_of_cancelled(campaign_id, result.record_id, at)
            if not first:  # cancelled by the attempt cut short?
                cancelled = cancelled or bool(
                    await self._changed_at(
                        {"_id": oid(result.record_id)}, TrackingStatus.CANCELLED, at
                    )
                )
            if cancelled:
                events += state_events([outcomes.changed_email(result)], EventType.CANCELLED, at)
        gained: Counter[str] = Counter()
        for field, counter in outcomes.counted_firsts(result.outcome).items():
            if field in COUNTED_ON_FIRST_EMAIL:
                gained[counter] += int(document.get("step", 1) == 1)
            else:
                emails = [result.recipient_email]
                people = await self._first_for_people(
                    campaign_id, result.user_id, emails, field, at
                )
                gained[counter] += int(bool(people))
        if result.next_step is not None:
            await self._next_step_due(campaign_id, result, result.next_step)
        if result.outcome in outcomes.ENDS_SEQUENCE:
            stopped = await self._end_sequence(campaign_id, result.recipient_email, at)
            if not first:  # and those the attempt cut short stopped, whose events it owes
                person = {"campaign_id": campaign_id, "recipient_email": result.recipient_email}
                stopped = await self._changed_at(person, TrackingStatus.STOPPED, at)
            events += outcomes.ended_by(result, stopped, at)
        if not first:
            events = await self._not_logged(events)
        await self._append_events(events)
        return gained

    async def _changed_at(
        self, query: Mapping[str, Any], status: TrackingStatus, at: datetime
    ) -> list[ChangedEmail]:
        """The emails `query` selects that a change at `at` put in `status`."""
        cursor = self._db[TRACKING].find(
            {**query, "status": status.value, "updated_at": at},
            {"campaign_id": 1, "user_id": 1, "recipient_email": 1},
        )
        return [changed_email(document) async for document in cursor]

    async def _not_logged(self, events: Sequence[EmailEvent]) -> list[EmailEvent]:
        """The events of `events` the log does not hold yet (same email, type, moment)."""
        missing = []
        for event in events:
            found = await self._db[EVENTS].find_one(
                {
                    "record_id": oid(event.record_id),
                    "type": event.type.value,
                    "occurred_at": event.occurred_at,
                },
                {"_id": 1},
            )
            if found is None:
                missing.append(event)
        return missing

    async def record_heartbeat(self, beat: WorkerHeartbeat) -> None:
        values = beat.model_dump()
        values["_id"] = values.pop("worker_id")
        await self._db[HEARTBEATS].replace_one({"_id": values["_id"]}, values, upsert=True)

    async def list_heartbeats(self) -> list[WorkerHeartbeat]:
        cursor = self._db[HEARTBEATS].find({}).sort([("beat_at", -1), ("_id", 1)])
        beats = []
        async for document in cursor:
            values = {key: decode(value) for key, value in document.items() if key != "_id"}
            beats.append(WorkerHeartbeat.model_validate({**values, "worker_id": document["_id"]}))
        return beats

    async def forget_heartbeats(self, *, before: datetime) -> int:
        result = await self._db[HEARTBEATS].delete_many({"beat_at": {"$lt": before}})
        return int(result.deleted_count)

    async def take_reconciliation_turn(self, *, now: datetime, until: datetime) -> bool:
        # One document names who reconciles until when: taken when free or run out (an
        # upsert that finds it held collides with it on _id and is refused).
        free = {"_id": "reconciliation", "until": {"$lte": now}}
        try:
            await self._db[META].update_one(free, {"$set": {"until": until}}, upsert=True)
        except DuplicateKeyError:
            return False
        return True

    async def complete_owed_outcomes(self, *, before: datetime) -> int:
        """Complete the consequences of outcomes recorded before `before` whose worker
        never finished them (it died between the record's change and the end of
        `record_results`); how many. A live worker finishes its own within seconds: it
        stores its outcomes until the database takes them (sending/worker.py)."""
        tracking = self._db[TRACKING]
        cursor = tracking.find(
            {f"{OWED}.at": {"$lt": before}}, {"campaign_id": 1, "step": 1, OWED: 1}
        ).limit(OWED_BATCH)
        owed = [document async for document in cursor]
        recount: set[str] = set()
        completed = 0
        for document in owed:
            try:
                result = _result_of(str(document["_id"]), document[OWED])
                at = decode(document[OWED]["at"])
                suppression = outcomes.suppression_for(result, at)
                if suppression is not None:
                    await self._suppress(suppression)
                await self._consequences(result, document, at, first=False)
            except DatabaseUnavailableError:
                raise
            except Exception:
                # One document that cannot be completed must not stop the others.
                log.exception("record %s: its owed outcome could not be completed", document["_id"])
                continue
            recount.add(result.campaign_id)
            await tracking.update_one(
                {"_id": document["_id"], f"{OWED}.at": at}, {"$unset": {OWED: ""}}
            )
            completed += 1
        for campaign_id in sorted(recount):
            await self.recompute_metrics(campaign_id, now=before)
        return completed

    async def _next_step_due(
        self, campaign_id: str, result: send_models.SendResult, due: send_models.NextStep
    ) -> None:
        """The sent email's next step becomes `pending`, from the mailbox that sent this
        one, no earlier than planned nor than its delay allows. (A crash just before
        leaves it waiting: it expires with the campaign, visibly, and is never sent twice.)"""
        who = {
            "campaign_id": campaign_id,
            "recipient_email": result.recipient_email,
            "step": due.step,
            "status": WAITING,
        }
        await self._db[TRACKING].update_one(
            who,
            {
                "$set": {"status": PENDING, "mailbox_id": oid(due.mailbox_id)},
                "$max": {"scheduled_at": due.not_before},
            },
        )

    async def _cancel_retry_of_cancelled(
        self, campaign_id: str, record_id: str, now: datetime
    ) -> bool:
        """A retry of a message that was in flight when its campaign was cancelled: cancel()
        emptied the queue before this record came back to it, so it is cancelled too. The
        campaign is read after the record was written: a cancel that ran before is seen
        here, one that runs after finds the record pending (cancel_pending)."""
        campaign = await self._db[CAMPAIGNS].find_one({"campaign_id": campaign_id}, {"status": 1})
        if campaign is None or campaign.get("status") != CampaignStatus.CANCELLED.value:
            return False
        changed = await self._db[TRACKING].update_one(
            {"_id": oid(record_id), "status": PENDING},
            {"$set": lifecycle.cancelled_pending(now)},
        )
        return bool(changed.modified_count)

    async def put_back(self, *, worker_id: str, due: Mapping[str, datetime]) -> int:
        by_moment: dict[datetime, list[str]] = defaultdict(list)
        for record_id, moment in due.items():
            by_moment[moment].append(record_id)
        put = 0
        for moment, record_ids in sorted(by_moment.items()):
            result = await self._db[TRACKING].update_many(
                {
                    "_id": {"$in": _object_ids(record_ids)},
                    "lease_owner": worker_id,
                    "status": PENDING,
                },
                {
                    "$set": {"lease_owner": None, "lease_expires_at": None},
                    "$max": {"scheduled_at": moment},
                },
            )
            put += int(result.matched_count)
        return put

    async def made_since(self, mailbox_id: str, since: datetime) -> int:
        if not ObjectId.is_valid(mailbox_id):
            return 0
        made = 0
        for count in lifecycle.MADE_COUNTS:
            made += await self._db[TRACKING].count_documents(
                {
                    "mailbox_id": oid(mailbox_id),
                    "status": {"$in": list(count.statuses)},
                    count.moment: {"$gte": since},
                }
            )
        # Its warm-up emails count against its daily limit too.
        made += int(
            await self._db[WARMUP].count_documents(
                {"mailbox_id": oid(mailbox_id), "sent_at": {"$gte": since}}
            )
        )
        return made

    async def take_turn(
        self, mailbox_id: str, *, now: datetime, until: datetime
    ) -> datetime | None:
        free = {"$or": [{"next_send_at": None}, {"next_send_at": {"$lte": now}}]}
        taken = await self._db[MAILBOXES].update_one(
            {"_id": oid(mailbox_id), **free}, {"$set": {"next_send_at": until}}
        )
        if taken.matched_count:
            return None
        held = await self._db[MAILBOXES].find_one({"_id": oid(mailbox_id)}, {"next_send_at": 1})
        moment = decode((held or {}).get("next_send_at"))
        return moment if isinstance(moment, datetime) else until

    async def release_marked(self, *, worker_id: str, record_ids: Collection[str]) -> int:
        # The mark may have landed with its answer lost (a failover, a write concern
        # timeout): undo it (the worker knows no provider got these), free the rest too.
        tracking = self._db[TRACKING]
        mine = {"_id": {"$in": _object_ids(record_ids)}, "lease_owner": worker_id}
        marked = await tracking.update_many(
            {**mine, "status": SENDING},
            {
                "$set": {"status": PENDING, "lease_owner": None, "lease_expires_at": None},
                "$inc": {"attempts": -1},
            },
        )
        await tracking.update_many(
            {**mine, "status": PENDING}, {"$set": {"lease_owner": None, "lease_expires_at": None}}
        )
        return int(marked.modified_count)

    async def release_claims(
        self, *, worker_id: str, record_ids: Collection[str] | None = None
    ) -> int:
        query: dict[str, Any] = {"lease_owner": worker_id, "status": PENDING}
        if record_ids is not None:
            query["_id"] = {"$in": _object_ids(record_ids)}
        result = await self._db[TRACKING].update_many(
            query, {"$set": {"lease_owner": None, "lease_expires_at": None}}
        )
        return int(result.matched_count)
