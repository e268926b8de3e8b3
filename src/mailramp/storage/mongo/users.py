"""Users on MongoDB."""

from __future__ import annotations

from collections.abc import (
    Mapping,
)
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from mailramp.accounts.models import User
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import (
    USERS,
    encode,
    from_document,
    oid,
)


class MongoUsers(MongoBase):
    """UserRepository on MongoDB."""

    async def insert_user(self, user: User) -> User:
        await self._insert(USERS, user)
        return user

    async def get_user(self, user_id: str) -> User | None:
        return await self._find_one(USERS, User, {"_id": oid(user_id)})

    async def get_user_by_login_id(self, login_id: str) -> User | None:
        return await self._find_one(USERS, User, {"login_id": login_id})

    async def get_user_by_email(self, email: str) -> User | None:
        return await self._find_one(USERS, User, _string_field("email", email))

    async def get_user_by_clerk_id(self, clerk_user_id: str) -> User | None:
        # On every Clerk-authenticated request: must be an index lookup.
        return await self._find_one(USERS, User, _string_field("clerk_user_id", clerk_user_id))

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

    async def any_user(self) -> bool:
        return await self._db[USERS].find_one({}, {"_id": 1}) is not None

    async def list_users(self) -> list[User]:
        cursor = self._db[USERS].find({}).sort([("created_at", 1), ("_id", 1)])
        users = [from_document(User, document) async for document in cursor]
        return [user for user in users if user is not None]


def _string_field(field: str, value: str) -> dict[str, Any]:
    """The filter for a user by an optional unique field. Its index is partial (`{field:
    {$type: "string"}}`, indexes.py), and the server uses a partial index only for a query
    that states the index's filter itself — it does not infer it from the equality. So the
    filter says both; the answer is the same."""
    return {"$and": [{field: value}, {field: {"$type": "string"}}]}
