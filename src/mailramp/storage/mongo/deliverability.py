"""Mailboxes' day-by-day histories on MongoDB, and what they are rolled up from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument

from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.deliverability.models import Placement, WarmupEmail, WarmupStatus
from mailramp.deliverability.repository import SentEmail, WarmupSent
from mailramp.mailboxes.models import Mailbox, MailboxDay
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import (
    CAMPAIGNS,
    EVENTS,
    MAILBOX_DAYS,
    MAILBOXES,
    TRACKING,
    WARMUP,
    decode,
    from_document,
    oid,
    to_document,
)
from mailramp.tracking.events import TALLIED_TYPES, TALLIES

KEPT_ON_CONFLICT = ("_id", "mailbox_id", "day")


class MongoDeliverability(MongoBase):
    async def linked_mailboxes(self) -> list[Mailbox]:
        cursor = self._db[MAILBOXES].find({"unlinked_at": None}).sort("created_at", 1)
        return _present([from_document(Mailbox, document) async for document in cursor])

    async def campaign_emails_sent_since(self, mailbox_id: str, since: datetime) -> list[SentEmail]:
        # The email says which mailbox sent it (and, for the index, when); what became of
        # it is read from the event log, as the counters are.
        query = {"mailbox_id": oid(mailbox_id), "sent_at": {"$gte": since}}
        ids = [document["_id"] async for document in self._db[TRACKING].find(query, {"_id": 1})]
        found: dict[str, list[tuple[str, bool, datetime]]] = {}
        wanted = {"record_id": {"$in": ids}, "type": {"$in": list(TALLIED_TYPES)}}
        fields = {"record_id": 1, "type": 1, "machine": 1, "occurred_at": 1}
        async for event in self._db[EVENTS].find(wanted, fields):
            seen = (str(event["type"]), bool(event.get("machine")), _aware(event["occurred_at"]))
            found.setdefault(str(event["record_id"]), []).append(seen)
        emails = []
        for events in found.values():

            def had(counter: str, events: list[tuple[str, bool, datetime]] = events) -> bool:
                return any(TALLIES[counter].counts(t, machine=m) for t, m, _ in events)

            sent = [at for t, m, at in events if TALLIES["total_sent"].counts(t, machine=m)]
            if sent and min(sent) >= since:
                emails.append(
                    SentEmail(
                        sent_at=min(sent),
                        bounced=had("total_bounced"),
                        complained=had("total_complained"),
                        replied=had("total_replied"),
                    )
                )
        return emails

    async def put_mailbox_days(self, days: Sequence[MailboxDay]) -> None:
        if not days:
            return
        for day in days:
            document = to_document(MAILBOX_DAYS, day)
            key = {"mailbox_id": document["mailbox_id"], "day": document["day"]}
            changes = {k: v for k, v in document.items() if k not in KEPT_ON_CONFLICT}
            await self._db[MAILBOX_DAYS].update_one(
                key, {"$set": changes, "$setOnInsert": {"_id": document["_id"]}}, upsert=True
            )

    async def sending_campaigns(self) -> list[Campaign]:
        cursor = self._db[CAMPAIGNS].find({"status": CampaignStatus.ACTIVE.value})
        return _present([from_document(Campaign, document) async for document in cursor])


def _present(items: Sequence[Any]) -> list[Any]:
    return [item for item in items if item is not None]


def _aware(moment: datetime) -> datetime:
    value: datetime = decode(moment)
    return value


class MongoWarmup(MongoBase):
    """The warm-up pool's emails on MongoDB."""

    async def warmup_sent_since(self, mailbox_id: str, since: datetime) -> list[WarmupSent]:
        query = {"mailbox_id": oid(mailbox_id), "sent_at": {"$gte": since}}
        found = []
        async for document in self._db[WARMUP].find(query, {"sent_at": 1, "placement": 1}):
            placement = document.get("placement")
            found.append(
                WarmupSent(_aware(document["sent_at"]), Placement(placement) if placement else None)
            )
        return found

    async def warmup_pool(self) -> list[Mailbox]:
        query = {
            "unlinked_at": None,
            "warmup_enabled": True,
            "status": "active",
            "is_active": True,
        }
        cursor = self._db[MAILBOXES].find(query).sort("created_at", 1)
        return _present([from_document(Mailbox, document) async for document in cursor])

    async def warmup_openings_between(self, mailbox_id: str, start: datetime, end: datetime) -> int:
        query = {
            "mailbox_id": oid(mailbox_id),
            "step": 0,
            "planned_at": {"$gte": start, "$lt": end},
        }
        return int(await self._db[WARMUP].count_documents(query))

    async def insert_warmup_emails(self, emails: Sequence[WarmupEmail]) -> None:
        if emails:
            await self._db[WARMUP].insert_many([to_document(WARMUP, e) for e in emails])

    async def claim_warmup_emails(self, now: datetime, *, limit: int) -> list[WarmupEmail]:
        due = {"status": WarmupStatus.PLANNED.value, "planned_at": {"$lte": now}}
        cursor = self._db[WARMUP].find(due, {"_id": 1}).sort("planned_at", 1).limit(limit)
        claimed = []
        async for document in cursor:
            taken = await self._db[WARMUP].find_one_and_update(
                {"_id": document["_id"], "status": WarmupStatus.PLANNED.value},
                {
                    "$set": {"status": WarmupStatus.SENDING.value, "updated_at": now},
                    "$inc": {"attempts": 1},
                },
                return_document=ReturnDocument.AFTER,
            )
            email = from_document(WarmupEmail, taken)
            if email is not None:
                claimed.append(email)
        return claimed

    async def finish_warmup_email(
        self, email_id: str, *, status: WarmupStatus, at: datetime, error: str | None = None
    ) -> None:
        values: dict[str, Any] = {"status": status.value, "updated_at": at, "last_error": error}
        if status is WarmupStatus.SENT:
            values["sent_at"] = at
        await self._db[WARMUP].update_one({"_id": oid(email_id)}, {"$set": values})

    async def warmup_emails_to_find(
        self, mailbox_id: str, *, sent_since: datetime
    ) -> list[WarmupEmail]:
        query = {
            "to_mailbox_id": oid(mailbox_id),
            "status": WarmupStatus.SENT.value,
            "found_at": None,
            "sent_at": {"$gte": sent_since},
        }
        cursor = self._db[WARMUP].find(query).sort("sent_at", 1)
        return _present([from_document(WarmupEmail, document) async for document in cursor])

    async def update_warmup_email(self, email_id: str, changes: Mapping[str, object]) -> None:
        values = {k: (v.value if isinstance(v, Placement) else v) for k, v in changes.items()}
        await self._db[WARMUP].update_one({"_id": oid(email_id)}, {"$set": values})

    async def get_warmup_email(self, email_id: str) -> WarmupEmail | None:
        return from_document(WarmupEmail, await self._db[WARMUP].find_one({"_id": oid(email_id)}))
