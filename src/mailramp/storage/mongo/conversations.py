"""People's lead statuses and the users' own labels on MongoDB (as
storage/sql/conversations.py)."""

from __future__ import annotations

from mailramp.conversations.models import LeadLabel
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import LEAD_LABELS, RECIPIENTS, from_document, maybe_oid
from mailramp.tracking.models import CampaignRecipient


class MongoConversations(MongoBase):
    async def get_person(
        self, user_id: str, campaign_id: str, recipient_email: str
    ) -> CampaignRecipient | None:
        owner = maybe_oid(user_id)
        if owner is None:
            return None
        document = await self._db[RECIPIENTS].find_one(
            {"user_id": owner, "campaign_id": campaign_id, "recipient_email": recipient_email}
        )
        return from_document(CampaignRecipient, document)

    async def count_lead_statuses(self, user_id: str, campaign_id: str) -> dict[str, int]:
        owner = maybe_oid(user_id)
        if owner is None:
            return {}
        cursor = await self._db[RECIPIENTS].aggregate(
            [
                {
                    "$match": {
                        "user_id": owner,
                        "campaign_id": campaign_id,
                        "lead_status": {"$ne": None},
                    }
                },
                {"$group": {"_id": "$lead_status", "count": {"$sum": 1}}},
            ]
        )
        return {row["_id"]: int(row["count"]) async for row in cursor}

    async def count_lead_status_holders(self, user_id: str, status: str) -> int:
        owner = maybe_oid(user_id)
        if owner is None:
            return 0
        return int(
            await self._db[RECIPIENTS].count_documents({"user_id": owner, "lead_status": status})
        )

    async def add_lead_label(self, label: LeadLabel) -> None:
        await self._insert(LEAD_LABELS, label)

    async def list_lead_labels(self, user_id: str) -> list[LeadLabel]:
        owner = maybe_oid(user_id)
        if owner is None:
            return []
        cursor = self._db[LEAD_LABELS].find({"user_id": owner}).sort("key", 1)
        return [label async for document in cursor if (label := from_document(LeadLabel, document))]

    async def delete_lead_label(self, user_id: str, key: str) -> bool:
        owner = maybe_oid(user_id)
        if owner is None:
            return False
        gone = await self._db[LEAD_LABELS].delete_one({"user_id": owner, "key": key})
        return bool(gone.deleted_count)
