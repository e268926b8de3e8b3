"""People's lead statuses, the users' own labels and the inbox on MongoDB (as
storage/sql/conversations.py). The inbox's threads are grouped here, from the user's
messages (a user's inbox is thousands of messages, not millions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailramp.conversations.models import LeadLabel
from mailramp.conversations.repository import ThreadQuery, ThreadSummary
from mailramp.errors import DuplicateError
from mailramp.kit.types import Page
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import (
    CAMPAIGNS,
    CONVERSATION_FILES,
    CONVERSATION_MESSAGES,
    LEAD_LABELS,
    RECIPIENTS,
    from_document,
    maybe_oid,
    oid,
)
from mailramp.storage.rows import check_page
from mailramp.tracking.models import CampaignRecipient, ConversationFile, ConversationMessage


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

    # -- the inbox ------------------------------------------------------------------

    async def list_threads(self, user_id: str, query: ThreadQuery) -> Page[ThreadSummary]:
        check_page(query.offset, query.limit)
        owner = maybe_oid(user_id)
        wanted: dict[str, Any] = {"user_id": owner}
        if not query.automatic:
            wanted["kind"] = {"$ne": "auto_reply"}
        if query.mailbox_id is not None:
            wanted["mailbox_id"] = maybe_oid(query.mailbox_id)
        threads: dict[tuple[str, str], list[ConversationMessage]] = {}
        cursor = self._db[CONVERSATION_MESSAGES].find(wanted).sort([("received_at", 1)])
        async for document in cursor:
            message = from_document(ConversationMessage, document)
            if message is not None:
                key = (message.campaign_id, message.recipient_email)
                threads.setdefault(key, []).append(message)
        names = await self._campaign_names(owner, {campaign for campaign, _ in threads})
        statuses = await self._lead_statuses(owner, set(threads))
        text = (query.search or "").lower()
        found: list[ThreadSummary] = []
        for (campaign_id, email), messages in threads.items():
            unread = sum(1 for m in messages if m.direction == "in" and m.read_at is None)
            if query.unread and not unread:
                continue
            if query.lead_status is not None and statuses.get((campaign_id, email)) != (
                query.lead_status
            ):
                continue
            said = (f"{m.sender}\n{m.subject}\n{m.text}".lower() for m in messages)
            if text and not (
                text in email
                or text in names.get(campaign_id, "").lower()
                or any(text in words for words in said)
            ):
                continue
            found.append(
                ThreadSummary(
                    campaign_id=campaign_id,
                    campaign_name=names.get(campaign_id, ""),
                    recipient_email=email,
                    lead_status=statuses.get((campaign_id, email)),
                    last_at=messages[-1].received_at,
                    messages=len(messages),
                    unread=unread,
                    latest=messages[-1],
                )
            )
        found.sort(key=lambda thread: thread.last_at, reverse=True)
        items = found[query.offset : query.offset + query.limit]
        return Page[ThreadSummary](
            items=items, total=len(found), offset=query.offset, limit=query.limit
        )

    async def _campaign_names(self, owner: Any, campaign_ids: set[str]) -> dict[str, str]:
        cursor = self._db[CAMPAIGNS].find(
            {"user_id": owner, "campaign_id": {"$in": sorted(campaign_ids)}},
            {"campaign_id": 1, "campaign_name": 1},
        )
        return {d["campaign_id"]: d.get("campaign_name", "") async for d in cursor}

    async def _lead_statuses(
        self, owner: Any, people: set[tuple[str, str]]
    ) -> dict[tuple[str, str], str | None]:
        campaigns = sorted({campaign for campaign, _ in people})
        cursor = self._db[RECIPIENTS].find(
            {"user_id": owner, "campaign_id": {"$in": campaigns}, "lead_status": {"$ne": None}},
            {"campaign_id": 1, "recipient_email": 1, "lead_status": 1},
        )
        return {
            (d["campaign_id"], d["recipient_email"]): d.get("lead_status") async for d in cursor
        }

    async def list_conversation(
        self, user_id: str, campaign_id: str, recipient_email: str
    ) -> list[ConversationMessage]:
        cursor = (
            self._db[CONVERSATION_MESSAGES]
            .find(
                {
                    "user_id": maybe_oid(user_id),
                    "campaign_id": campaign_id,
                    "recipient_email": recipient_email,
                }
            )
            .sort([("received_at", 1), ("_id", 1)])
        )
        return [m async for d in cursor if (m := from_document(ConversationMessage, d))]

    async def get_conversation_message(
        self, user_id: str, message_id: str
    ) -> ConversationMessage | None:
        owner, key = maybe_oid(user_id), maybe_oid(message_id)
        if owner is None or key is None:
            return None
        return await self._find_one(
            CONVERSATION_MESSAGES, ConversationMessage, {"_id": key, "user_id": owner}
        )

    async def get_conversation_file(
        self, user_id: str, file_id: str
    ) -> tuple[ConversationMessage, ConversationFile] | None:
        owner, key = maybe_oid(user_id), maybe_oid(file_id)
        if owner is None or key is None:
            return None
        file = await self._find_one(
            CONVERSATION_FILES, ConversationFile, {"_id": key, "user_id": owner}
        )
        if file is None:
            return None
        message = await self._find_one(
            CONVERSATION_MESSAGES, ConversationMessage, {"_id": oid(file.message_id)}
        )
        return None if message is None else (message, file)

    async def mark_conversation_read(
        self, user_id: str, campaign_id: str, recipient_email: str, *, read_at: datetime | None
    ) -> int:
        changed = await self._db[CONVERSATION_MESSAGES].update_many(
            {
                "user_id": maybe_oid(user_id),
                "campaign_id": campaign_id,
                "recipient_email": recipient_email,
                "direction": "in",
                "read_at": None if read_at is not None else {"$ne": None},
            },
            {"$set": {"read_at": read_at}},
        )
        return int(changed.modified_count)

    async def add_conversation_message(self, message: ConversationMessage) -> bool:
        try:
            await self._insert(CONVERSATION_MESSAGES, message)
        except DuplicateError:
            return False
        return True

    async def finish_answer(
        self, answer_id: str, *, status: str, error: str | None, message_id: str | None
    ) -> bool:
        finished = await self._db[CONVERSATION_MESSAGES].update_one(
            {"_id": oid(answer_id), "status": "sending"},
            {"$set": {"status": status, "error": error, "message_id": message_id}},
        )
        return bool(finished.modified_count)
