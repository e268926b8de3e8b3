"""The legacy collections (warm_up_emails_table, email_campaigns) on MongoDB, read as they
were written.

On MongoDB these ARE the original collections: a document keeps its own fields at the top
level (no `document` wrapper as on SQL), its `_id` an ObjectId and its owner's `user_id` an
ObjectId. `import_legacy` (bringing a previous deployment's export over) understands
MongoDB Extended JSON (`{"$oid": …}`, `{"$date": …}`, …) and stores the BSON values it
stands for. Reading also accepts documents an old deployment wrote with the owner's id as a
string; documents whose `_id` is not an ObjectId cannot be addressed and are not listed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId, json_util
from bson.json_util import JSONOptions
from pydantic_core import to_jsonable_python
from pymongo.errors import BulkWriteError, DuplicateKeyError

from mailramp.errors import DuplicateError
from mailramp.kit.types import Page
from mailramp.legacy.models import LegacyCollection, LegacyDocument
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import decode, maybe_oid
from mailramp.storage.rows import check_page

_EXTENDED_JSON = JSONOptions(tz_aware=True, tzinfo=UTC)
_BSON_SCALARS = (str, int, float, bool, bytes, datetime, ObjectId, type(None))
ADDRESSABLE = {"$type": "objectId"}
LEGACY_BATCH = 500


class MongoLegacy(MongoBase):
    """LegacyRepository."""

    async def import_legacy(
        self, collection: LegacyCollection, documents: Sequence[dict[str, Any]]
    ) -> int:
        prepared = [_legacy_document(document) for document in documents]
        if not prepared:
            return 0
        target = self._db[LegacyCollection(collection).value]
        # All or nothing without a transaction (SQL inserts the batch in one): refuse an id
        # already there before writing; should a concurrent import win the race, take back
        # what this one wrote.
        ids = [document["_id"] for document in prepared]
        repeated = next((value for n, value in enumerate(ids) if value in ids[:n]), None)
        if repeated is not None:
            raise DuplicateError("_id", str(repeated))
        existing = await target.find_one({"_id": {"$in": ids}}, {"_id": 1})
        if existing is not None:
            raise DuplicateError("_id", str(existing["_id"]))
        try:
            await target.insert_many(prepared, ordered=True)
        except (BulkWriteError, DuplicateKeyError) as error:
            details: Mapping[str, Any] = error.details or {}
            written = ids[: int(details.get("nInserted") or 0)]
            if written:
                await target.delete_many({"_id": {"$in": written}})
            refused = (details.get("writeErrors") or [{}])[0].get("index")
            value = ids[refused] if isinstance(refused, int) and refused < len(ids) else None
            raise DuplicateError("_id", None if value is None else str(value)) from None
        return len(prepared)

    async def list_legacy(
        self, collection: LegacyCollection, user_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[LegacyDocument]:
        check_page(offset, limit)
        query = _owned_by(user_id)
        target = self._db[LegacyCollection(collection).value]
        total = await target.count_documents(query)
        cursor = target.find(query).sort([("created_at", 1), ("_id", 1)]).skip(offset).limit(limit)
        items = [_legacy_model(document) async for document in cursor]
        return Page[LegacyDocument](items=items, total=total, offset=offset, limit=limit)

    async def iter_legacy(self, collection: LegacyCollection) -> AsyncIterator[LegacyDocument]:
        target = self._db[LegacyCollection(collection).value]
        last: ObjectId | None = None
        while True:
            query: dict[str, Any] = {"_id": ADDRESSABLE if last is None else {"$gt": last}}
            cursor = target.find(query).sort([("_id", 1)]).limit(LEGACY_BATCH)
            documents = [document async for document in cursor]
            for document in documents:
                yield _legacy_model(document)
            if len(documents) < LEGACY_BATCH:
                return
            last = documents[-1]["_id"]

    async def get_legacy(
        self, collection: LegacyCollection, user_id: str, document_id: str
    ) -> LegacyDocument | None:
        document_oid = maybe_oid(document_id)
        if document_oid is None:
            return None
        query = _owned_by(user_id) | {"_id": document_oid}
        document = await self._db[LegacyCollection(collection).value].find_one(query)
        return None if document is None else _legacy_model(document)


def _owned_by(user_id: str) -> dict[str, Any]:
    """The user's addressable documents: the owner as the ObjectId the schema stores, or
    as the string some old deployments wrote."""
    owner = maybe_oid(user_id)
    forms: list[Any] = [user_id] if owner is None else [owner, str(owner)]
    return {"user_id": {"$in": forms}, "_id": ADDRESSABLE}


def _legacy_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """An old document as it is stored: its own fields, Extended JSON turned into the BSON
    values it stands for, `_id` (kept when it is an ObjectId, else a new one — as on SQL)
    and `user_id` as ObjectIds."""
    stored: dict[str, Any] = _bson_value(dict(document))
    raw_id = stored.get("_id")
    if isinstance(raw_id, str) and ObjectId.is_valid(raw_id):
        raw_id = ObjectId(raw_id)
    stored["_id"] = raw_id if isinstance(raw_id, ObjectId) else ObjectId()
    owner = stored.get("user_id")
    if isinstance(owner, str) and ObjectId.is_valid(owner):
        stored["user_id"] = ObjectId(owner)
    return stored


def _bson_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        converted = {str(key): _bson_value(item) for key, item in value.items()}
        if any(key.startswith("$") for key in converted):
            return json_util.object_hook(converted, _EXTENDED_JSON)
        return converted
    if isinstance(value, list | tuple):
        return [_bson_value(item) for item in value]
    if isinstance(value, _BSON_SCALARS):
        return value
    # Anything BSON has no type for is kept as its JSON form (as on SQL).
    return to_jsonable_python(value, fallback=str)


def _legacy_model(document: Mapping[str, Any]) -> LegacyDocument:
    """The model of a stored legacy document: id, owner and date lifted out, the whole
    document JSON-ready (ids as strings, dates ISO 8601) as SQL keeps it."""
    owner = document.get("user_id")
    if isinstance(owner, str) and ObjectId.is_valid(owner):
        owner = ObjectId(owner)
    created_at = document.get("created_at")
    body = to_jsonable_python(decode(dict(document)), fallback=str)
    return LegacyDocument.model_validate(
        {
            "_id": str(document["_id"]),
            "user_id": str(owner) if isinstance(owner, ObjectId) else None,
            "created_at": decode(created_at) if isinstance(created_at, datetime) else None,
            "document": body,
        }
    )
