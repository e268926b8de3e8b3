"""Mailboxes on MongoDB: linking, the primary mailbox, secrets, inbox positions."""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Mapping,
)
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bson import ObjectId
from pydantic import BaseModel
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from mailramp.mailboxes.models import SECRET_FIELDS, Mailbox, MailboxDay, check_secret_field
from mailramp.mailboxes.primary import PRIMARY_RETRIES, PrimaryMailboxConflict, retry_primary
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import (
    MAILBOX_DAYS,
    MAILBOXES,
    encode,
    from_document,
    oid,
    to_document,
)

SECRET_SCAN_BATCH = 500


def _is_primary_conflict(error: DuplicateKeyError) -> bool:
    """Whether the refused write collided on the one-primary-per-user index.

    A server names the index in the message and `keyPattern`; the test double names
    neither, so callers that only touch `is_primary` treat any duplicate as this one."""
    return PRIMARY_INDEX in str(error)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def _models(model: type[ModelT], cursor: Any) -> AsyncIterator[ModelT]:
    """The models of a cursor's documents."""
    async for document in cursor:
        item = from_document(model, document)
        if item is not None:
            yield item


PRIMARY_INDEX = "uq_linkbox_box_table_primary"


ModelT = TypeVar("ModelT", bound=BaseModel)


class MongoMailboxes(MongoBase):
    """MailboxRepository on MongoDB."""

    async def _restore_primary(self, user_id: str) -> None:
        """If the user has linked mailboxes but no primary, promote the oldest.

        The partial unique index (one `is_primary: true` per user) lets only one of two
        concurrent promotions through; the other gets a duplicate key, which means a
        primary now exists: re-check rather than fail."""
        owner = oid(user_id)
        for _ in range(PRIMARY_RETRIES):
            cursor = (
                self._db[MAILBOXES]
                .find({"user_id": owner, "unlinked_at": None}, {"_id": 1, "is_primary": 1})
                .sort([("created_at", 1), ("_id", 1)])
            )
            rows = [row async for row in cursor]
            if not rows or any(row.get("is_primary") for row in rows):
                return
            try:
                await self._db[MAILBOXES].update_one(
                    {"_id": rows[0]["_id"], "user_id": owner, "unlinked_at": None},
                    {"$set": {"is_primary": True}},
                )
            except DuplicateKeyError:
                continue  # someone else promoted one: look again

    def _mailbox_of(self, user_id: str, mailbox_id: str) -> dict[str, Any]:
        return {"_id": oid(mailbox_id), "user_id": oid(user_id)}

    async def insert_mailbox(self, mailbox: Mailbox) -> Mailbox:
        # Inserted as not primary (the primary index never refuses it); the primary is then
        # decided by `_restore_primary`, as the SQL store does in its transaction.
        document = to_document(MAILBOXES, mailbox) | {"is_primary": False}
        try:
            await self._db[MAILBOXES].insert_one(document)
        except DuplicateKeyError as error:
            raise await self._duplicate(MAILBOXES, document, error) from None
        await self._restore_primary(mailbox.user_id)
        stored = await self._find_one(
            MAILBOXES, Mailbox, self._mailbox_of(mailbox.user_id, mailbox.id)
        )
        assert stored is not None
        return stored

    async def get_mailbox(self, user_id: str, mailbox_id: str) -> Mailbox | None:
        return await self._find_one(MAILBOXES, Mailbox, self._mailbox_of(user_id, mailbox_id))

    async def get_mailbox_unscoped(self, mailbox_id: str) -> Mailbox | None:
        if not ObjectId.is_valid(mailbox_id):
            return None
        return await self._find_one(MAILBOXES, Mailbox, {"_id": oid(mailbox_id)})

    async def tracking_domain_in_use(self, domain: str) -> bool:
        query = {
            "tracking_domain": domain,
            "tracking_domain_verified_at": {"$ne": None},
            "unlinked_at": None,
        }
        return await self._db[MAILBOXES].find_one(query, {"_id": 1}) is not None

    async def mailboxes_due_dns_check(self, before: datetime, *, limit: int) -> list[Mailbox]:
        due = {
            "unlinked_at": None,
            "$or": [{"dns_checked_at": None}, {"dns_checked_at": {"$lt": before}}],
        }
        # Never checked first (a missing or null field sorts first), then oldest check first.
        cursor = (
            self._db[MAILBOXES].find(due).sort([("dns_checked_at", 1), ("_id", 1)]).limit(limit)
        )
        return [box async for box in _models(Mailbox, cursor)]

    async def mailbox_days(self, mailbox_id: str, *, since: str | None = None) -> list[MailboxDay]:
        query: dict[str, Any] = {"mailbox_id": oid(mailbox_id)}
        if since is not None:
            query["day"] = {"$gte": since}
        cursor = self._db[MAILBOX_DAYS].find(query).sort("day", 1)
        return [day async for day in _models(MailboxDay, cursor)]

    async def get_mailbox_by_email(self, user_id: str, email: str) -> Mailbox | None:
        return await self._find_one(MAILBOXES, Mailbox, {"user_id": oid(user_id), "email": email})

    async def linked_mailboxes_with_email(self, email: str) -> list[Mailbox]:
        cursor = (
            self._db[MAILBOXES]
            .find({"email": email, "unlinked_at": None})
            .sort([("created_at", 1), ("_id", 1)])
        )
        return [box async for box in _models(Mailbox, cursor)]

    async def list_mailboxes(
        self, user_id: str, *, include_unlinked: bool = False
    ) -> list[Mailbox]:
        query: dict[str, Any] = {"user_id": oid(user_id)}
        if not include_unlinked:
            query["unlinked_at"] = None
        cursor = (
            self._db[MAILBOXES]
            .find(query)
            .sort([("is_primary", -1), ("created_at", 1), ("_id", 1)])
        )
        return [box async for box in _models(Mailbox, cursor)]

    async def update_mailbox(
        self, user_id: str, mailbox_id: str, changes: Mapping[str, Any]
    ) -> Mailbox | None:
        values = encode(MAILBOXES, changes)
        query = self._mailbox_of(user_id, mailbox_id)

        async def apply() -> Mailbox | None:
            if values:
                try:
                    await self._db[MAILBOXES].update_one(query, {"$set": values})
                except DuplicateKeyError as error:
                    if _is_primary_conflict(error) or (
                        values.get("is_primary") is True and "email" not in values
                    ):
                        raise PrimaryMailboxConflict(str(error)) from None
                    raise await self._duplicate(MAILBOXES, query | values, error) from None
            await self._restore_primary(user_id)
            return await self._find_one(MAILBOXES, Mailbox, query)

        return await retry_primary(apply)

    async def set_primary_mailbox(self, user_id: str, mailbox_id: str) -> Mailbox | None:
        """Two single-document steps (no transaction): clear the user's other primary, then
        mark this one — the unique partial index never allows two primaries. Between the
        steps a reader may see no primary for an instant; a concurrent `_restore_primary`
        promoting another in that gap makes the second step collide, and it retries."""
        owner = oid(user_id)
        query = self._mailbox_of(user_id, mailbox_id)
        boxes = self._db[MAILBOXES]
        for attempt in range(PRIMARY_RETRIES):
            target = await self._find_one(MAILBOXES, Mailbox, query)
            if target is None or not target.is_linked:
                return None
            await boxes.update_many(
                {"user_id": owner, "_id": {"$ne": query["_id"]}, "is_primary": True},
                {"$set": {"is_primary": False}},
            )
            try:
                document = await boxes.find_one_and_update(
                    query | {"unlinked_at": None},
                    {"$set": {"is_primary": True}},
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                if attempt == PRIMARY_RETRIES - 1:
                    raise
                continue
            if document is None:  # unlinked meanwhile: keep the invariant for the others
                await self._restore_primary(user_id)
                return None
            return from_document(Mailbox, document)
        raise AssertionError("unreachable")

    async def iter_mailbox_secrets(self) -> AsyncGenerator[tuple[str, str, str], None]:
        has_secret = [{name: {"$type": "string"}} for name in SECRET_FIELDS]
        projection = dict.fromkeys(SECRET_FIELDS, 1)
        after: Any = None
        while True:
            # Keyset pagination on _id: no cursor is held while the caller works.
            query: dict[str, Any] = {"$or": has_secret}
            if after is not None:
                query["_id"] = {"$gt": after}
            cursor = (
                self._db[MAILBOXES]
                .find(query, projection)
                .sort([("_id", 1)])
                .limit(SECRET_SCAN_BATCH)
            )
            rows = [row async for row in cursor]
            if not rows:
                return
            for row in rows:
                for name in SECRET_FIELDS:
                    if row.get(name) is not None:
                        yield str(row["_id"]), name, row[name]
            after = rows[-1]["_id"]

    async def replace_mailbox_secret(
        self, mailbox_id: str, field: str, *, old: str, new: str
    ) -> bool:
        check_secret_field(field)
        result = await self._db[MAILBOXES].update_one(
            {"_id": oid(mailbox_id), field: old}, {"$set": {field: new}}
        )
        return bool(result.matched_count == 1)

    async def list_inbox_mailboxes(self) -> list[Mailbox]:
        cursor = self._db[MAILBOXES].find(
            {
                "unlinked_at": None,
                "status": "active",
                # IMAP hosts, and OAuth mailboxes (read through Graph or Gmail).
                "$or": [
                    {"imap_host": {"$type": "string"}},
                    {"provider": {"$in": ["outlook", "gmail"]}},
                ],
            }
        )
        boxes = [box async for box in _models(Mailbox, cursor)]
        # Never checked first, then least recently checked (as the SQL store orders them).
        boxes.sort(
            key=lambda box: (box.inbox_checked_at is not None, box.inbox_checked_at or _EPOCH)
        )
        return boxes

    async def claim_inbox_check(self, mailbox_id: str, *, now: datetime, interval: float) -> bool:
        # One find_one_and_update whose filter is the expected state: of two workers, only
        # the first matches; the second sees the fresh `inbox_checked_at` and gets None.
        due = now - timedelta(seconds=interval)
        claimed = await self._db[MAILBOXES].find_one_and_update(
            {
                "_id": oid(mailbox_id),
                "$or": [{"inbox_checked_at": None}, {"inbox_checked_at": {"$lte": due}}],
            },
            {"$set": {"inbox_checked_at": now}},
            projection={"_id": 1},
        )
        return claimed is not None

    async def save_inbox_position(
        self, mailbox_id: str, *, uid_validity: int, last_uid: int
    ) -> None:
        await self._db[MAILBOXES].update_one(
            {"_id": oid(mailbox_id)},
            {"$set": {"imap_uid_validity": uid_validity, "imap_last_uid": last_uid}},
        )
