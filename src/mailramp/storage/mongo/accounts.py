"""Users, mailboxes, campaigns and their metrics documents on MongoDB.

Mirrors storage/sql/store.py method by method: same errors, orderings and edge cases.
Every query on tenant data filters by the owner's `user_id` (an ObjectId); the unscoped
methods are the ones the protocols name so (secret scans, the inbox poller, workers).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from mailramp.accounts.models import User
from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.errors import DuplicateError
from mailramp.kit.secrets import INSTANCE_SECRETS_TABLE
from mailramp.kit.types import Page
from mailramp.mailboxes.models import SECRET_FIELDS, Mailbox
from mailramp.mailboxes.primary import PRIMARY_RETRIES, PrimaryMailboxConflict, retry_primary
from mailramp.metrics.models import COUNTERS, CampaignMetrics, derived_fields
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import (
    CAMPAIGNS,
    MAILBOXES,
    METRICS,
    USERS,
    encode,
    from_document,
    oid,
    to_document,
)

SECRET_SCAN_BATCH = 500
PRIMARY_INDEX = "uq_linkbox_box_table_primary"

ResultT = TypeVar("ResultT")
ModelT = TypeVar("ModelT", bound=BaseModel)


def _is_primary_conflict(error: DuplicateKeyError) -> bool:
    """Whether the refused write collided on the one-primary-per-user index.

    A server names the index in the message and `keyPattern`; the test double names
    neither, so callers that only touch `is_primary` treat any duplicate as this one."""
    return PRIMARY_INDEX in str(error)


class MongoAccounts(MongoBase):
    """UserRepository, MailboxRepository, CampaignRepository, MetricsRepository."""

    # -- users ------------------------------------------------------------------------

    async def insert_user(self, user: User) -> User:
        await self._insert(USERS, user)
        return user

    async def get_user(self, user_id: str) -> User | None:
        return await self._find_one(USERS, User, {"_id": oid(user_id)})

    async def get_user_by_login_id(self, login_id: str) -> User | None:
        return await self._find_one(USERS, User, {"login_id": login_id})

    async def get_user_by_email(self, email: str) -> User | None:
        return await self._find_one(USERS, User, {"email": email})

    async def get_user_by_clerk_id(self, clerk_user_id: str) -> User | None:
        return await self._find_one(USERS, User, {"clerk_user_id": clerk_user_id})

    async def update_user(self, user_id: str, changes: Mapping[str, Any]) -> User | None:
        values = encode(USERS, changes)
        query = {"_id": oid(user_id)}
        if not values:
            return await self._find_one(USERS, User, query)
        try:
            document = await self._db[USERS].find_one_and_update(
                query, {"$set": values}, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError as error:
            raise await self._duplicate(USERS, {"_id": query["_id"], **values}, error) from None
        return from_document(User, document)

    # -- mailboxes --------------------------------------------------------------------

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
            # The oldest may have been unlinked in between (no match): look again.

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

    async def get_mailbox_by_email(self, user_id: str, email: str) -> Mailbox | None:
        return await self._find_one(MAILBOXES, Mailbox, {"user_id": oid(user_id), "email": email})

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
        if field not in SECRET_FIELDS:
            raise ValueError(f"{field!r} is not a secret field")
        result = await self._db[MAILBOXES].update_one(
            {"_id": oid(mailbox_id), field: old}, {"$set": {field: new}}
        )
        return bool(result.matched_count == 1)

    # -- instance secrets ---------------------------------------------------------------

    async def get_instance_secret(self, name: str) -> str | None:
        document = await self._db[INSTANCE_SECRETS_TABLE].find_one({"_id": name})
        return None if document is None else str(document["value"])

    async def add_instance_secret(self, name: str, value: str, *, now: datetime) -> str:
        # Several processes may start at once: the first insert wins, the others read it.
        with contextlib.suppress(DuplicateKeyError):
            await self._db[INSTANCE_SECRETS_TABLE].insert_one(
                {"_id": name, "value": value, "created_at": now, "updated_at": now}
            )
        stored = await self.get_instance_secret(name)
        assert stored is not None
        return stored

    async def replace_instance_secret(
        self, name: str, *, old: str, new: str, now: datetime
    ) -> bool:
        result = await self._db[INSTANCE_SECRETS_TABLE].update_one(
            {"_id": name, "value": old}, {"$set": {"value": new, "updated_at": now}}
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

    # -- campaigns --------------------------------------------------------------------

    async def insert_campaign(self, campaign: Campaign, metrics: CampaignMetrics) -> Campaign:
        """Two documents without a transaction, written in this order:

        1. the `campaign_matrix` document; if refused, nothing was written;
        2. the campaign; if refused (duplicate key), the metrics document of step 1 is
           deleted again; on any other failure it is deleted only once the campaign is
           known not to be there (the write may have been applied before a connection
           dropped).

        A crash between 1 and 2 leaves at most a metrics document whose campaign never
        existed: invisible, since readers reach metrics through a campaign_id only a stored
        campaign hands out. So a campaign is never visible without its metrics."""
        metrics_document = to_document(METRICS, metrics)
        try:
            await self._db[METRICS].insert_one(metrics_document)
        except DuplicateKeyError as error:
            refused = await self._duplicate(METRICS, metrics_document, error)
            if isinstance(refused, DuplicateError) and refused.field == "campaign_id":
                # As on SQL, which inserts the campaign first: the campaign_id is taken.
                refused = DuplicateError("campaign_id", campaign.campaign_id, kind="campaign")
            raise refused from None
        campaign_document = to_document(CAMPAIGNS, campaign)
        try:
            await self._db[CAMPAIGNS].insert_one(campaign_document)
        except DuplicateKeyError as error:
            await self._db[METRICS].delete_one({"_id": metrics_document["_id"]})
            raise await self._duplicate(CAMPAIGNS, campaign_document, error) from None
        except BaseException:
            with contextlib.suppress(PyMongoError):
                stored = await self._db[CAMPAIGNS].find_one(
                    {"_id": campaign_document["_id"]}, {"_id": 1}
                )
                if stored is None:
                    await self._db[METRICS].delete_one({"_id": metrics_document["_id"]})
            raise
        return campaign

    def _campaign_of(self, user_id: str, campaign_id: str) -> dict[str, Any]:
        return {"campaign_id": campaign_id, "user_id": oid(user_id)}

    async def get_campaign(self, user_id: str, campaign_id: str) -> Campaign | None:
        return await self._find_one(CAMPAIGNS, Campaign, self._campaign_of(user_id, campaign_id))

    async def list_campaigns(
        self,
        user_id: str,
        *,
        statuses: Collection[CampaignStatus] | None = None,
        mailbox_id: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[Campaign]:
        query: dict[str, Any] = {"user_id": oid(user_id)}
        if statuses is not None:
            query["status"] = {"$in": [str(status) for status in statuses]}
        if mailbox_id is not None:
            query["mailbox_id"] = oid(mailbox_id)
        order = [("created_at", -1), ("_id", -1)]
        return await self._page(CAMPAIGNS, Campaign, query, order, offset, limit)

    async def update_campaign(
        self,
        user_id: str,
        campaign_id: str,
        changes: Mapping[str, Any],
        *,
        expected_status: CampaignStatus,
    ) -> Campaign | None:
        values = encode(CAMPAIGNS, changes)
        query = self._campaign_of(user_id, campaign_id)
        # Compare-and-set on the status in one single-document update.
        update: dict[str, Any] = {"$set": values} if values else {"$set": {}}
        try:
            if values:
                document = await self._db[CAMPAIGNS].find_one_and_update(
                    query | {"status": expected_status.value},
                    update,
                    return_document=ReturnDocument.AFTER,
                )
            else:
                document = await self._db[CAMPAIGNS].find_one(
                    query | {"status": expected_status.value}
                )
        except DuplicateKeyError as error:
            raise await self._duplicate(CAMPAIGNS, query | values, error) from None
        if document is None:
            return None
        if "mailbox_id" in values:
            # The metrics document follows its campaign's mailbox; a crash before this
            # write leaves it naming the old one until the next edit (metrics are read by
            # campaign_id, never by mailbox, in the services).
            await self._db[METRICS].update_one(
                {"campaign_id": campaign_id}, {"$set": {"mailbox_id": values["mailbox_id"]}}
            )
        return from_document(Campaign, document)

    # -- metrics ----------------------------------------------------------------------

    async def get_metrics(self, user_id: str, campaign_id: str) -> CampaignMetrics | None:
        return await self._find_one(
            METRICS, CampaignMetrics, {"campaign_id": campaign_id, "user_id": oid(user_id)}
        )

    async def get_metrics_unscoped(self, campaign_id: str) -> CampaignMetrics | None:
        return await self._find_one(METRICS, CampaignMetrics, {"campaign_id": campaign_id})

    async def increment_metrics(
        self, campaign_id: str, deltas: Mapping[str, int], *, at: datetime
    ) -> CampaignMetrics | None:
        unknown = set(deltas) - set(COUNTERS) | ({"total_delivered"} & set(deltas))
        if unknown:
            raise ValueError(f"not incrementable counters: {sorted(unknown)}")
        return await self._increment_metrics(campaign_id, deltas, at)

    async def _increment_metrics(
        self, campaign_id: str, deltas: Mapping[str, int], now: datetime
    ) -> CampaignMetrics | None:
        """`$inc` the counters (atomic on the server, so concurrent increments are never
        lost), then write the derived fields computed from the counters read back.

        Two writers may interleave between the `$inc` and the rates; the rates write is
        therefore guarded by the counters it was computed from (compare-and-set), and
        recomputed from a fresh read when the counters moved on meanwhile — the last
        writer leaves rates that match the final counters. False (None) when the campaign
        has no metrics document."""
        metrics = self._db[METRICS]
        increments = {name: int(delta) for name, delta in deltas.items()}
        document = await metrics.find_one_and_update(
            {"campaign_id": campaign_id},
            {"$inc": increments, "$set": {"last_updated": now}}
            if increments
            else {"$set": {"last_updated": now}},
            return_document=ReturnDocument.AFTER,
        )
        while document is not None:
            counters = {name: int(document.get(name, 0)) for name in COUNTERS}
            derived = derived_fields(counters)
            if all(document.get(name) == value for name, value in derived.items()):
                break
            guard = {"_id": document["_id"], **counters}
            updated = await metrics.find_one_and_update(
                guard, {"$set": derived}, return_document=ReturnDocument.AFTER
            )
            if updated is not None:
                document = updated
                break
            document = await metrics.find_one({"_id": document["_id"]})
        return from_document(CampaignMetrics, document)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def _models(model: type[ModelT], cursor: Any) -> AsyncIterator[ModelT]:
    """The models of a cursor's documents."""
    async for document in cursor:
        item = from_document(model, document)
        if item is not None:
            yield item
