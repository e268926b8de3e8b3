"""The send queue on MongoDB: import, planning writes, leases, outcomes, lifecycle.
Mirrors storage/sql/queue.py method by method (the rules are in `sending/outcomes.py` and
`sending/lifecycle.py`).

Without transactions (a standalone server has none), each step is a single-document
atomic operation, and steps that touch several documents are ordered so that a crash in
between leaves nothing a worker or a reader would act on wrongly:

- Leases: `claim_due` reads candidate ids, then takes each with `find_one_and_update`
  whose filter repeats "pending, lease free": of any number of concurrent claimers, the
  server lets exactly one match a given record; the others move on to the next candidate.
- Outcomes: each record's status change is one `find_one_and_update` guarded by its open
  state (`sending`/`uncertain`); only the changes that matched are counted, then the
  bounce suppressions are written, then the campaign's counters `$inc`-ed once per batch.
  A crash after the status changes and before the `$inc` leaves the counters short (never
  double). A crash between a record's status change and its event leaves a moment the log
  misses: recomputing the metrics (recompute_metrics) first gives each such moment its
  event (marked `backfilled`, storage/mongo/upgrade.py), then counts the log.
- Import: records are inserted with no `scheduled_at` (no worker claims them, no plan
  counts them) and only scheduled once every batch is in and the plan succeeded; if the
  batches or the plan raise, the records this import inserted are deleted again. A crash
  mid-import leaves its records pending and unscheduled: never sent, picked up by the next
  import or re-plan of the campaign (both schedule every pending record), and expired with
  the rest at the campaign's end.
- Campaign state (active, mailbox usable) lives in other collections: the claim reads the
  ids of active campaigns and usable mailboxes first (they are few) and filters with `$in`.
"""

from __future__ import annotations

import asyncio
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
from pymongo.errors import BulkWriteError

from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.campaigns.repository import PendingSchedule, PlanFunction, Slot
from mailramp.mailboxes.models import MailboxStatus
from mailramp.sending import lifecycle, outcomes
from mailramp.sending import models as send_models
from mailramp.sending.repository import Lease, RecipientBatches
from mailramp.storage.mongo.codec import (
    CAMPAIGNS,
    MAILBOXES,
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
from mailramp.storage.mongo.metrics import MongoMetrics
from mailramp.storage.mongo.people import UNSENT, MongoPeople
from mailramp.storage.mongo.suppression import MongoSuppression
from mailramp.tracking.events import COUNTED_ON_FIRST_EMAIL, queued, state_events
from mailramp.tracking.models import (
    EmailTracking,
    EventType,
    TrackingStatus,
)

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
            # All or nothing: take back what this import inserted, and its people.
            taken_back: set[str] = set()
            for start in range(0, len(inserted), 1000):
                chunk = {"_id": {"$in": inserted[start : start + 1000]}, "status": {"$in": UNSENT}}
                taken_back.update(await tracking.distinct("recipient_email", chunk))
                await self._delete_emails(chunk, "import_refused", started)
            for email in sorted(taken_back):
                who = {"campaign_id": campaign.campaign_id, "recipient_email": email}
                if await tracking.find_one(who, {"_id": 1}) is None:
                    await self._db[RECIPIENTS].delete_one(who)
            raise
        total = await tracking.count_documents({"campaign_id": campaign.campaign_id, "step": 1})
        await self._db[CAMPAIGNS].update_one(
            {"campaign_id": campaign.campaign_id}, {"$set": {"total_recipients": total}}
        )
        return send_models.ImportCounts(
            accepted=accepted, duplicates=duplicates, suppressed=suppressed, total_recipients=total
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
        tried: list[ObjectId] = []
        while len(claimed) < limit:
            query = {**due, "_id": {"$nin": tried}} if tried else due
            cursor = (
                tracking.find(query, {"_id": 1})
                .sort([("scheduled_at", 1)])
                .limit(limit - len(claimed))
            )
            candidates = [document["_id"] async for document in cursor]
            if not candidates:
                break
            for record_id in candidates:
                tried.append(record_id)
                # The filter repeats what makes the record claimable: if another worker
                # leased it since the read above, this matches nothing and it is skipped.
                document = await tracking.find_one_and_update(
                    {"_id": record_id, "status": PENDING, **_lease_free(now)},
                    {"$set": held},
                    return_document=ReturnDocument.AFTER,
                )
                record = from_document(EmailTracking, document)
                if record is not None:
                    claimed.append(record)
        # Oldest first (candidate order is kept among equal times).
        claimed.sort(key=lambda record: record.scheduled_at or now)
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
        self, results: Sequence[send_models.SendResult], *, now: datetime
    ) -> None:
        if not results:
            return
        tracking = self._db[TRACKING]
        deltas: dict[str, Counter[str]] = defaultdict(Counter)
        for result in results:
            if not ObjectId.is_valid(result.record_id):
                continue
            # The record's own state change guards everything counted for it: a repeated
            # report matches nothing here and changes nothing below.
            document = await tracking.find_one_and_update(
                {
                    "_id": oid(result.record_id),
                    "status": {"$in": outcomes.states_it_may_leave(result)},
                },
                {"$set": encode(TRACKING, outcomes.outcome_values(result, now))},
                projection={"campaign_id": 1, "step": 1},
            )
            if document is None:
                continue
            events = outcomes.outcome_events(result, now)
            campaign_id = str(document["campaign_id"])
            retried = result.outcome is send_models.Outcome.RETRY
            if retried and await self._cancel_retry_of_cancelled(
                campaign_id, result.record_id, now
            ):
                events += state_events([outcomes.changed_email(result)], EventType.CANCELLED, now)
            for field, counter in outcomes.counted_firsts(result.outcome).items():
                if field in COUNTED_ON_FIRST_EMAIL:
                    gained = document.get("step", 1) == 1
                else:
                    emails = [result.recipient_email]
                    gained = bool(
                        await self._first_for_people(
                            campaign_id, result.user_id, emails, field, now
                        )
                    )
                if gained:
                    deltas[campaign_id][counter] += 1
            if result.next_step is not None:
                await self._next_step_due(campaign_id, result, result.next_step)
            if result.outcome in outcomes.ENDS_SEQUENCE:
                stopped = await self._end_sequence(campaign_id, result.recipient_email, now)
                events += outcomes.ended_by(result, stopped, now)
            suppression = outcomes.suppression_for(result, now)
            if suppression is not None:
                await self._suppress(suppression)
            await self._append_events(events)
        # Counters last: `$inc` once per campaign for the changes that matched above (the
        # metrics document's own increment, MongoAccounts._increment_metrics: `$inc`, then
        # the rates compare-and-set from the counters it read back).
        for campaign_id in sorted(deltas):
            await self._increment_metrics(campaign_id, dict(deltas[campaign_id]), now)

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
