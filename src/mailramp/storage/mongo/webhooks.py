"""Outgoing webhooks on MongoDB (as storage/sql/webhooks.py). Without transactions a change
is ordered so a crash between two writes repeats work rather than losing it: messages are
queued (duplicates refused by the unique index) before the cursor moves; an attempt is
logged before its message changes."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError

from mailramp.kit.types import Page
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import (
    WEBHOOK_ATTEMPTS,
    WEBHOOK_ENDPOINTS,
    WEBHOOK_MESSAGES,
    encode,
    from_document,
    maybe_oid,
    oid,
    to_document,
)
from mailramp.webhooks.models import (
    AttemptResult,
    MessageStatus,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    endpoint_changes,
)
from mailramp.webhooks.repository import MessageQuery

PENDING = MessageStatus.PENDING.value


class MongoWebhooks(MongoBase):
    async def add_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        await self._insert(WEBHOOK_ENDPOINTS, endpoint)

    async def get_webhook_endpoint(self, user_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        key = _owned(user_id, endpoint_id)
        return (
            None if key is None else await self._find_one(WEBHOOK_ENDPOINTS, WebhookEndpoint, key)
        )

    async def list_webhook_endpoints(self, user_id: str) -> list[WebhookEndpoint]:
        owner = maybe_oid(user_id)
        if owner is None:
            return []
        cursor = (
            self._db[WEBHOOK_ENDPOINTS]
            .find({"user_id": owner})
            .sort([("created_at", 1), ("_id", 1)])
        )
        return [e async for document in cursor if (e := from_document(WebhookEndpoint, document))]

    async def update_webhook_endpoint(
        self, user_id: str, endpoint_id: str, changes: Mapping[str, Any]
    ) -> WebhookEndpoint | None:
        key = _owned(user_id, endpoint_id)
        if key is None:
            return None
        if changes:
            await self._db[WEBHOOK_ENDPOINTS].update_one(
                key, {"$set": encode(WEBHOOK_ENDPOINTS, changes)}
            )
        return await self._find_one(WEBHOOK_ENDPOINTS, WebhookEndpoint, key)

    async def delete_webhook_endpoint(self, user_id: str, endpoint_id: str) -> bool:
        key = _owned(user_id, endpoint_id)
        if key is None:
            return False
        gone = await self._db[WEBHOOK_ENDPOINTS].delete_one(key)
        if gone.deleted_count:
            await self._db[WEBHOOK_ATTEMPTS].delete_many({"endpoint_id": key["_id"]})
            await self._db[WEBHOOK_MESSAGES].delete_many({"endpoint_id": key["_id"]})
        return bool(gone.deleted_count)

    async def all_webhook_endpoints(self) -> list[WebhookEndpoint]:
        cursor = self._db[WEBHOOK_ENDPOINTS].find({}).sort([("created_at", 1), ("_id", 1)])
        return [e async for document in cursor if (e := from_document(WebhookEndpoint, document))]

    async def replace_webhook_secret(
        self, endpoint_id: str, field: str, *, old: str, new: str
    ) -> bool:
        replaced = await self._db[WEBHOOK_ENDPOINTS].update_one(
            {"_id": oid(endpoint_id), field: old}, {"$set": {field: new}}
        )
        return bool(replaced.modified_count)

    async def enabled_webhook_endpoints(self) -> list[WebhookEndpoint]:
        cursor = (
            self._db[WEBHOOK_ENDPOINTS]
            .find({"enabled": True})
            .sort([("created_at", 1), ("_id", 1)])
        )
        return [e async for document in cursor if (e := from_document(WebhookEndpoint, document))]

    async def queue_webhook_messages(
        self,
        endpoint_id: str,
        messages: Sequence[WebhookMessage],
        *,
        cursor_from: int,
        cursor_to: int,
    ) -> bool:
        endpoint = await self._db[WEBHOOK_ENDPOINTS].find_one(
            {"_id": oid(endpoint_id)}, {"cursor": 1}
        )
        if endpoint is None or endpoint.get("cursor", 0) != cursor_from:
            return False
        if messages:
            documents = [to_document(WEBHOOK_MESSAGES, message) for message in messages]
            # Queued meanwhile by another worker (or before a crash): the index refuses it.
            with contextlib.suppress(BulkWriteError):
                await self._db[WEBHOOK_MESSAGES].insert_many(documents, ordered=False)
        moved = await self._db[WEBHOOK_ENDPOINTS].update_one(
            {"_id": oid(endpoint_id), "cursor": cursor_from}, {"$set": {"cursor": cursor_to}}
        )
        return bool(moved.modified_count)

    async def resume_webhook_messages(self, endpoint_id: str, *, now: datetime) -> int:
        resumed = await self._db[WEBHOOK_MESSAGES].update_many(
            {"endpoint_id": oid(endpoint_id), "status": PENDING},
            {"$set": {"next_attempt_at": now, "updated_at": now}},
        )
        return int(resumed.modified_count)

    async def add_webhook_message(self, message: WebhookMessage) -> None:
        await self._insert(WEBHOOK_MESSAGES, message)

    async def claim_webhook_messages(
        self, *, now: datetime, lease_until: datetime, limit: int
    ) -> list[WebhookMessage]:
        enabled = [
            document["_id"]
            async for document in self._db[WEBHOOK_ENDPOINTS].find({"enabled": True}, {"_id": 1})
        ]
        free = {"$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}]}
        due = {
            "status": PENDING,
            "endpoint_id": {"$in": enabled},
            "next_attempt_at": {"$lte": now},
            **free,
        }
        cursor = (
            self._db[WEBHOOK_MESSAGES]
            .find(due)
            .sort([("next_attempt_at", 1), ("seq", 1)])
            .limit(limit * 4)
        )
        claimed: list[WebhookMessage] = []
        async for document in cursor:
            if len(claimed) == limit:
                break
            if document.get("seq") is not None and await self._db[WEBHOOK_MESSAGES].find_one(
                {
                    "endpoint_id": document["endpoint_id"],
                    "person": document["person"],
                    "status": PENDING,
                    "seq": {"$lt": document["seq"]},
                },
                {"_id": 1},
            ):
                continue  # the person's earlier message goes first
            taken = await self._db[WEBHOOK_MESSAGES].find_one_and_update(
                {"_id": document["_id"], "status": PENDING, **free},
                {"$set": {"lease_until": lease_until}},
                return_document=ReturnDocument.AFTER,
            )
            if (message := from_document(WebhookMessage, taken)) is not None:
                claimed.append(message)
        return claimed

    async def record_webhook_attempts(self, results: Sequence[AttemptResult]) -> None:
        if not results:
            return
        documents = [to_document(WEBHOOK_ATTEMPTS, r.attempt) for r in results]
        with contextlib.suppress(BulkWriteError):  # logged before a crash: once is enough
            await self._db[WEBHOOK_ATTEMPTS].insert_many(documents, ordered=False)
        for result in results:
            attempt = result.attempt
            changes: dict[str, Any] = {
                "status": result.status.value,
                "next_attempt_at": result.next_attempt_at,
                "lease_until": None,
                "last_status_code": attempt.status_code,
                "last_error": attempt.error,
                "updated_at": attempt.attempted_at,
            }
            if result.status is MessageStatus.DELIVERED:
                changes["delivered_at"] = attempt.attempted_at
            await self._db[WEBHOOK_MESSAGES].update_one(
                {"_id": oid(attempt.message_id)}, {"$set": changes, "$inc": {"attempts": 1}}
            )
        for endpoint_id, endpoint_change in endpoint_changes(results).items():
            key = {"_id": oid(endpoint_id)}
            rest = dict(endpoint_change)
            start = rest.get("failing_since")
            if start is not None and "last_success_at" not in rest:
                del rest["failing_since"]  # a failing streak starts unless one runs
                await self._db[WEBHOOK_ENDPOINTS].update_one(
                    {**key, "failing_since": None}, {"$set": {"failing_since": start}}
                )
            if rest:
                await self._db[WEBHOOK_ENDPOINTS].update_one(key, {"$set": rest})

    async def list_webhook_messages(
        self, user_id: str, query: MessageQuery
    ) -> Page[WebhookMessage]:
        wanted: dict[str, Any] = {
            "user_id": maybe_oid(user_id),
            "endpoint_id": maybe_oid(query.endpoint_id),
        }
        if query.status is not None:
            wanted["status"] = query.status.value
        sort = [("created_at", -1), ("seq", -1), ("_id", -1)]
        return await self._page(
            WEBHOOK_MESSAGES, WebhookMessage, wanted, sort, query.offset, query.limit
        )

    async def get_webhook_message(self, user_id: str, message_id: str) -> WebhookMessage | None:
        key = _owned(user_id, message_id)
        return None if key is None else await self._find_one(WEBHOOK_MESSAGES, WebhookMessage, key)

    async def list_webhook_attempts(self, user_id: str, message_id: str) -> list[WebhookAttempt]:
        owner, message = maybe_oid(user_id), maybe_oid(message_id)
        if owner is None or message is None:
            return []
        cursor = (
            self._db[WEBHOOK_ATTEMPTS]
            .find({"user_id": owner, "message_id": message})
            .sort([("attempted_at", 1), ("_id", 1)])
        )
        return [a async for document in cursor if (a := from_document(WebhookAttempt, document))]

    async def redeliver_webhook_message(
        self, user_id: str, message_id: str, *, now: datetime
    ) -> WebhookMessage | None:
        key = _owned(user_id, message_id)
        if key is None:
            return None
        document = await self._db[WEBHOOK_MESSAGES].find_one_and_update(
            key,
            {
                "$set": {
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "lease_until": None,
                    "updated_at": now,
                }
            },
            return_document=ReturnDocument.AFTER,
        )
        return from_document(WebhookMessage, document)


def _owned(user_id: str, object_id: str) -> dict[str, Any] | None:
    owner, key = maybe_oid(user_id), maybe_oid(object_id)
    return None if owner is None or key is None else {"_id": key, "user_id": owner}
