"""The instance's own encrypted secrets (tracking keys) on MongoDB."""

from __future__ import annotations

import contextlib
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from mailramp.kit.secrets import INSTANCE_SECRETS_TABLE
from mailramp.storage.mongo.base import MongoBase


class MongoSecrets(MongoBase):
    """InstanceSecretRepository on MongoDB."""

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
