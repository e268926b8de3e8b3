"""The suppression list on MongoDB."""

from __future__ import annotations

from collections.abc import (
    Collection,
)

from pymongo.errors import DuplicateKeyError

from mailramp.kit.types import Page
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import (
    SUPPRESSIONS,
    oid,
    to_document,
)
from mailramp.suppression.models import Suppression


class MongoSuppression(MongoBase):
    """SuppressionRepository on MongoDB."""

    async def _suppress(self, suppression: Suppression) -> bool:
        try:
            await self._db[SUPPRESSIONS].insert_one(to_document(SUPPRESSIONS, suppression))
        except DuplicateKeyError:
            return False  # already suppressed: the first reason is kept
        return True

    async def add_suppression(self, suppression: Suppression) -> bool:
        return await self._suppress(suppression)

    async def suppressed_among(self, user_id: str, emails: Collection[str]) -> set[str]:
        if not emails:
            return set()
        cursor = self._db[SUPPRESSIONS].find(
            {"user_id": oid(user_id), "email": {"$in": list(emails)}}, {"email": 1, "_id": 0}
        )
        return {str(document["email"]) async for document in cursor}

    async def list_suppressions(
        self, user_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[Suppression]:
        return await self._page(
            SUPPRESSIONS,
            Suppression,
            {"user_id": oid(user_id)},
            [("created_at", -1), ("_id", -1)],
            offset,
            limit,
        )

    async def remove_suppression(self, user_id: str, email: str) -> bool:
        result = await self._db[SUPPRESSIONS].delete_one({"user_id": oid(user_id), "email": email})
        return bool(result.deleted_count)
