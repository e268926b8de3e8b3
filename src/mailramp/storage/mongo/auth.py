"""API keys, sessions and login throttling on MongoDB.

Every write is one single-document (or one `update_many`) operation: marking a key used,
revoking, counting a failed login (`$inc`, read back in the same `find_one_and_update`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from mailramp.auth.models import ApiKey, AuditEntry, Session
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import (
    API_KEYS,
    AUDIT,
    SESSIONS,
    USERS,
    WEBHOOK_DELIVERIES,
    from_document,
    maybe_oid,
)
from mailramp.storage.rows import check_page


class MongoAuth(MongoBase):
    """AuthRepository."""

    # -- the audit log ----------------------------------------------------------------

    async def insert_audit_entry(self, entry: AuditEntry) -> AuditEntry:
        await self._insert(AUDIT, entry)
        return entry

    async def list_audit_entries(self, *, offset: int, limit: int) -> list[AuditEntry]:
        check_page(offset, limit)
        cursor = self._db[AUDIT].find({}).sort([("at", -1), ("_id", -1)]).skip(offset).limit(limit)
        entries = [from_document(AuditEntry, document) async for document in cursor]
        return [entry for entry in entries if entry is not None]

    # -- API keys ---------------------------------------------------------------------

    async def insert_api_key(self, key: ApiKey) -> ApiKey:
        await self._insert(API_KEYS, key)
        return key

    async def list_api_keys(self, user_id: str) -> list[ApiKey]:
        owner = maybe_oid(user_id)
        if owner is None:
            return []
        cursor = self._db[API_KEYS].find({"user_id": owner}).sort([("created_at", -1), ("_id", -1)])
        keys = [from_document(ApiKey, document) async for document in cursor]
        return [key for key in keys if key is not None]

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        document = await self._db[API_KEYS].find_one({"key_hash": key_hash, "revoked_at": None})
        return from_document(ApiKey, document)

    async def mark_api_key_used(self, key_id: str, *, now: datetime) -> None:
        key = maybe_oid(key_id)
        if key is not None:
            await self._db[API_KEYS].update_one({"_id": key}, {"$set": {"last_used_at": now}})

    async def revoke_api_key(self, user_id: str, key_id: str, *, now: datetime) -> bool:
        owner, key = maybe_oid(user_id), maybe_oid(key_id)
        if owner is None or key is None:
            return False
        result = await self._db[API_KEYS].update_one(
            {"_id": key, "user_id": owner, "revoked_at": None}, {"$set": {"revoked_at": now}}
        )
        return bool(result.matched_count == 1)

    async def revoke_api_keys(self, user_id: str, *, now: datetime) -> int:
        owner = maybe_oid(user_id)
        if owner is None:
            return 0
        result = await self._db[API_KEYS].update_many(
            {"user_id": owner, "revoked_at": None}, {"$set": {"revoked_at": now}}
        )
        return int(result.modified_count)

    async def remember_webhook_delivery(
        self, delivery_id: str, *, now: datetime, forget_before: datetime
    ) -> bool:
        # The TTL index forgets old deliveries on the server's schedule; the delete keeps
        # the answer right between its passes (and on the test double, which has no TTL).
        await self._db[WEBHOOK_DELIVERIES].delete_many({"received_at": {"$lt": forget_before}})
        try:
            await self._db[WEBHOOK_DELIVERIES].insert_one({"_id": delivery_id, "received_at": now})
        except DuplicateKeyError:
            return False
        return True

    async def forget_webhook_delivery(self, delivery_id: str) -> None:
        await self._db[WEBHOOK_DELIVERIES].delete_one({"_id": delivery_id})

    # -- sessions ---------------------------------------------------------------------

    async def insert_session(self, session: Session) -> Session:
        await self._insert(SESSIONS, session)
        return session

    async def find_session(self, token_hash: str, *, now: datetime) -> Session | None:
        return await self._find_one(
            SESSIONS,
            Session,
            {"token_hash": token_hash, "revoked_at": None, "expires_at": {"$gt": now}},
        )

    async def revoke_session(self, user_id: str, session_id: str, *, now: datetime) -> bool:
        session = maybe_oid(session_id)
        return session is not None and await self._revoke(user_id, {"$eq": session}, now) > 0

    async def revoke_sessions(self, user_id: str, *, now: datetime, keep: str | None = None) -> int:
        kept = maybe_oid(keep) if keep is not None else None
        return await self._revoke(user_id, {"$ne": kept} if kept is not None else None, now)

    async def _revoke(self, user_id: str, ids: dict[str, Any] | None, now: datetime) -> int:
        owner = maybe_oid(user_id)
        if owner is None:
            return 0
        query: dict[str, Any] = {"user_id": owner, "revoked_at": None}
        if ids is not None:
            query["_id"] = ids
        result = await self._db[SESSIONS].update_many(query, {"$set": {"revoked_at": now}})
        return int(result.modified_count)

    # -- login throttling -------------------------------------------------------------

    async def reserve_login_attempt(
        self, user_id: str, *, seen_failures: int, now: datetime
    ) -> bool:
        # Compare-and-set on the count the caller saw (see the SQL adapter).
        user = maybe_oid(user_id)
        if user is None:
            return False
        # A document written before the field existed has no count: that is a count of 0.
        seen: Any = seen_failures if seen_failures else {"$in": [0, None]}
        result = await self._db[USERS].update_one(
            {"_id": user, "failed_logins": seen},
            {"$set": {"failed_logins": seen_failures + 1, "last_failed_login_at": now}},
        )
        return bool(result.modified_count == 1)

    async def reset_login_failures(self, user_id: str) -> None:
        user = maybe_oid(user_id)
        if user is None:
            return
        await self._db[USERS].update_one(
            {"_id": user}, {"$set": {"failed_logins": 0, "last_failed_login_at": None}}
        )
