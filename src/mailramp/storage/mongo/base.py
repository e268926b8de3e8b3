"""What every part of the MongoDB Store shares: the database, documents ↔ models,
duplicate keys → DuplicateError naming the field, pages, schema version.

Atomicity without a replica set: every write that must be atomic is one single-document
operation (`find_one_and_update` with the expected state in its filter, `$inc` guarded by
the record's own state change), or is ordered so that a crash between two documents
leaves nothing a reader would see as inconsistent (documented where it happens).
Transactions are never required.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self, TypeVar

import pymongo
from pydantic import BaseModel
from pymongo import ReadPreference, WriteConcern
from pymongo.errors import DuplicateKeyError

from mailramp.errors import DuplicateError, MailrampError, ValidationError
from mailramp.kit.types import Page
from mailramp.storage.mongo.client import (
    DEFAULT_WRITE_CONCERN,
    LONG_OPERATION_SECONDS,
    WTIMEOUT_MS,
    open_database,
)
from mailramp.storage.mongo.codec import META, decode, from_document, to_document
from mailramp.storage.mongo.guard import guarded
from mailramp.storage.mongo.indexes import IndexSpec, ensure_indexes, unique_indexes
from mailramp.storage.mongo.upgrade import upgrade_documents
from mailramp.storage.rows import check_page

ModelT = TypeVar("ModelT", bound=BaseModel)

SCHEMA_VERSION = "mongo-0026"
KNOWN_VERSIONS = frozenset(
    {
        "mongo-0005",
        "mongo-0006",
        "mongo-0008",
        "mongo-0009",
        "mongo-0014",
        "mongo-0023",
        "mongo-0024",
        "mongo-0025",
        SCHEMA_VERSION,
    }
)
"""The document layout this code writes (indexes, fields); kept in step with the SQL
migrations' head so both backends hold the same data."""


class MongoBase:
    """The database handle and helpers every query method uses."""

    backend = "mongodb"

    def __init__(
        self,
        database: Any,
        *,
        client: Any | None = None,
        write_concern: str = DEFAULT_WRITE_CONCERN,
    ) -> None:
        self._raw = database
        # Every write majority-acknowledged and journaled, every read from the primary,
        # whatever the URL says (client.py: why); every operation through the guard, so an
        # outage is DatabaseUnavailableError.
        self._db = guarded(
            database.with_options(
                write_concern=write_concern_of(write_concern),
                read_preference=ReadPreference.PRIMARY,
            )
        )
        self._client = client

    @classmethod
    def from_url(
        cls,
        database_url: str,
        *,
        max_pool_size: int = 100,
        write_concern: str = DEFAULT_WRITE_CONCERN,
    ) -> Self:
        """A store on the database a mongodb:// or mongodb+srv:// URL names."""
        client, database = open_database(database_url, max_pool_size=max_pool_size)
        return cls(database, client=client, write_concern=write_concern)

    @property
    def database(self) -> Any:
        """The database as given (an AsyncDatabase, or the test double's), unguarded."""
        return self._raw

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    # -- schema -----------------------------------------------------------------------

    async def ping(self) -> None:
        await self._db.command("ping")

    async def schema_version(self) -> str | None:
        # A database never migrated has no META document (find_one answers None); an error
        # here means the server cannot be used (the guard says so), not that it is empty.
        document = await self._db[META].find_one({"_id": "schema"})
        return None if document is None else str(document["version"])

    async def migrate(self) -> str:
        """Bring documents of an older layout up to this one, bring in the indexes
        (missing ones created, equivalent ones adopted, conflicts logged — never dropped;
        the report stays in `index_report`) and record the layout version. Under a
        budget of its own (an index built over a large existing collection takes longer
        than the client's 60 s socket timeout allows one answer)."""
        with pymongo.timeout(LONG_OPERATION_SECONDS):
            await upgrade_documents(self._db, await self.schema_version())
            self.index_report = await ensure_indexes(self._db)
            await self._db[META].update_one(
                {"_id": "schema"}, {"$set": {"version": SCHEMA_VERSION}}, upsert=True
            )
        return SCHEMA_VERSION

    async def downgrade(self, version: str) -> str:
        """Record an older layout version, for the older mailramp that wrote it (its
        documents keep the fields and indexes added since, which older code leaves alone)."""
        if version not in KNOWN_VERSIONS:
            known = ", ".join(sorted(KNOWN_VERSIONS))
            raise ValidationError(
                "revision", f"{version!r} is no layout this mailramp knows ({known})"
            )
        await self._db[META].update_one(
            {"_id": "schema"}, {"$set": {"version": version}}, upsert=True
        )
        return version

    # -- documents --------------------------------------------------------------------

    async def _insert(self, collection: str, model: BaseModel) -> None:
        document = to_document(collection, model)
        try:
            await self._db[collection].insert_one(document)
        except DuplicateKeyError as error:
            raise await self._duplicate(collection, document, error) from None

    async def _duplicate(
        self, collection: str, document: Mapping[str, Any], error: DuplicateKeyError
    ) -> MailrampError:
        """The DuplicateError for a refused insert or update: the index the server names,
        or (a server or double that does not say) the unique index another document
        matches."""
        text = str(error)
        pattern = set((error.details or {}).get("keyPattern") or {})
        specs = unique_indexes(collection)
        for spec in specs:
            if spec.name in text or pattern == set(spec.keys):
                return _duplicate_of(spec, document)
        if not pattern:
            # The server (or the test double) did not say which index: find the unique
            # index another document already holds these values in.
            for spec in specs:
                if not all(key in document for key in spec.keys):
                    continue
                values = {key: document[key] for key in spec.keys}
                if spec.partial is not None and not _matches(spec.partial, document):
                    continue  # this document is outside the partial index
                query: dict[str, Any] = {"$and": [values, spec.partial or {}]}
                query["_id"] = {"$ne": document.get("_id")}
                if await self._db[collection].find_one(query, {"_id": 1}) is not None:
                    return _duplicate_of(spec, document)
        return DuplicateError("_id", decode(document.get("_id")))

    async def _find_one(
        self, collection: str, model: type[ModelT], query: Mapping[str, Any]
    ) -> ModelT | None:
        return from_document(model, await self._db[collection].find_one(dict(query)))

    async def _page(
        self,
        collection: str,
        model: type[ModelT],
        query: Mapping[str, Any],
        sort: Sequence[tuple[str, int]],
        offset: int,
        limit: int,
    ) -> Page[ModelT]:
        check_page(offset, limit)
        total = await self._db[collection].count_documents(dict(query))
        cursor = self._db[collection].find(dict(query)).sort(list(sort)).skip(offset).limit(limit)
        items = [from_document(model, document) async for document in cursor]
        return Page[model](  # type: ignore[valid-type]
            items=[item for item in items if item is not None],
            total=total,
            offset=offset,
            limit=limit,
        )


def _matches(partial: Mapping[str, Any], document: Mapping[str, Any]) -> bool:
    """Whether `document` falls under a partial index's filter (the forms INDEXES uses:
    `{"$type": "string"}` and equality)."""
    for key, condition in partial.items():
        value = document.get(key)
        if isinstance(condition, Mapping) and set(condition) == {"$type"}:
            if condition["$type"] == "string" and not isinstance(value, str):
                return False
        elif value != condition:
            return False
    return True


def _duplicate_of(spec: IndexSpec, document: Mapping[str, Any]) -> DuplicateError:
    field = spec.field or spec.keys[-1]
    return DuplicateError(field, decode(document.get(field)), kind=spec.kind)


def write_concern_of(setting: str) -> WriteConcern:
    """The adapter's write concern: `majority` (the default) or a number of members,
    always journaled, with a timeout (an unacknowledged write is an outage, which the
    worker waits out)."""
    w: int | str = int(setting) if setting.isdigit() else setting
    return WriteConcern(w=w, j=True, wtimeout=WTIMEOUT_MS)
