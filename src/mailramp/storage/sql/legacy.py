"""The previous application's collections on SQL, read-only once imported."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import select

from mailramp.kit.ids import is_object_id, new_object_id
from mailramp.kit.types import Page
from mailramp.legacy.models import LegacyCollection, LegacyDocument
from mailramp.storage.sql import tables
from mailramp.storage.sql.base import SqlBase

LEGACY_BATCH = 500


_LEGACY_TABLES = {
    LegacyCollection.WARM_UP_EMAILS: tables.warm_up_emails,
    LegacyCollection.EMAIL_CAMPAIGNS: tables.email_campaigns,
}


def _legacy_row(document: Mapping[str, Any]) -> dict[str, Any]:
    """How an old document is kept: as it was (JSON-safe), with its id, owner and date lifted
    out for indexing."""
    body = to_jsonable_python(dict(document), fallback=str)
    raw_id = body.get("_id")
    if isinstance(raw_id, dict) and "$oid" in raw_id:  # MongoDB extended JSON
        raw_id = raw_id["$oid"]
    document_id = str(raw_id).lower() if is_object_id(raw_id) else new_object_id()
    body["_id"] = document_id
    raw_user = body.get("user_id")
    if isinstance(raw_user, dict) and "$oid" in raw_user:
        raw_user = raw_user["$oid"]
    created_at = document.get("created_at")
    return {
        "_id": document_id,
        "user_id": str(raw_user).lower() if is_object_id(raw_user) else None,
        "created_at": created_at
        if isinstance(created_at, datetime) and created_at.tzinfo
        else None,
        "document": json.loads(json.dumps(body)),
    }


class SqlLegacy(SqlBase):
    """LegacyRepository on SQL."""

    async def import_legacy(
        self, collection: LegacyCollection, documents: Sequence[dict[str, Any]]
    ) -> int:
        rows = [_legacy_row(document) for document in documents]
        if not rows:
            return 0
        async with self._write() as connection:
            await connection.execute(_LEGACY_TABLES[collection].insert(), rows)
        return len(rows)

    async def list_legacy(
        self, collection: LegacyCollection, user_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[LegacyDocument]:
        table = _LEGACY_TABLES[collection]
        order = (table.c.created_at, table.c._id)
        async with self._read() as connection:
            return await self._page(
                connection, LegacyDocument, table, table.c.user_id == user_id, order, offset, limit
            )

    async def iter_legacy(self, collection: LegacyCollection) -> AsyncGenerator[LegacyDocument]:
        table = _LEGACY_TABLES[collection]
        last: str | None = None
        while True:
            statement = select(table).order_by(table.c._id).limit(LEGACY_BATCH)
            if last is not None:
                statement = statement.where(table.c._id > last)
            async with self._read() as connection:
                rows = (await connection.execute(statement)).mappings().all()
            for row in rows:
                yield LegacyDocument.model_validate(dict(row))
            if len(rows) < LEGACY_BATCH:
                return
            last = rows[-1]["_id"]

    async def get_legacy(
        self, collection: LegacyCollection, user_id: str, document_id: str
    ) -> LegacyDocument | None:
        table = _LEGACY_TABLES[collection]
        return await self._read_one(
            LegacyDocument,
            select(table).where(table.c._id == document_id, table.c.user_id == user_id),
        )
