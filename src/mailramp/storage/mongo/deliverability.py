"""Mailboxes' day-by-day histories on MongoDB, and what they are rolled up from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import UpdateOne

from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.deliverability.repository import SentEmail
from mailramp.mailboxes.models import Mailbox, MailboxDay
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import (
    CAMPAIGNS,
    MAILBOX_DAYS,
    MAILBOXES,
    TRACKING,
    decode,
    from_document,
    oid,
    to_document,
)

KEPT_ON_CONFLICT = ("_id", "mailbox_id", "day")


class MongoDeliverability(MongoBase):
    async def linked_mailboxes(self) -> list[Mailbox]:
        cursor = self._db[MAILBOXES].find({"unlinked_at": None}).sort("created_at", 1)
        return _present([from_document(Mailbox, document) async for document in cursor])

    async def campaign_emails_sent_since(self, mailbox_id: str, since: datetime) -> list[SentEmail]:
        fields = {"sent_at": 1, "bounced_at": 1, "complained_at": 1, "replied_at": 1}
        query = {"mailbox_id": oid(mailbox_id), "sent_at": {"$gte": since}}
        found = []
        async for document in self._db[TRACKING].find(query, fields):
            found.append(
                SentEmail(
                    sent_at=_aware(document["sent_at"]),
                    bounced=document.get("bounced_at") is not None,
                    complained=document.get("complained_at") is not None,
                    replied=document.get("replied_at") is not None,
                )
            )
        return found

    async def put_mailbox_days(self, days: Sequence[MailboxDay]) -> None:
        if not days:
            return
        writes = []
        for day in days:
            document = to_document(MAILBOX_DAYS, day)
            key = {"mailbox_id": document["mailbox_id"], "day": document["day"]}
            changes = {k: v for k, v in document.items() if k not in KEPT_ON_CONFLICT}
            writes.append(
                UpdateOne(
                    key,
                    {"$set": changes, "$setOnInsert": {"_id": document["_id"]}},
                    upsert=True,
                )
            )
        await self._db[MAILBOX_DAYS].bulk_write(writes, ordered=False)

    async def sending_campaigns(self) -> list[Campaign]:
        cursor = self._db[CAMPAIGNS].find({"status": CampaignStatus.ACTIVE.value})
        return _present([from_document(Campaign, document) async for document in cursor])


def _present(items: Sequence[Any]) -> list[Any]:
    return [item for item in items if item is not None]


def _aware(moment: datetime) -> datetime:
    value: datetime = decode(moment)
    return value
