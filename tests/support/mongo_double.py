"""An in-process double of PyMongo's async API over mongomock, for the MongoDB adapter's
conformance suite when no MongoDB server is at hand (MAILRAMP_TEST_MONGODB_URL runs the
same suite against a real one).

PyMongo's AsyncCollection methods are coroutines, except `find`, which returns a cursor
to iterate with `async for` (as here). mongomock runs each call to completion inside the
event loop's thread, so every single-document operation is atomic, as on a server; what
the double cannot show is listed in tests/storage/MONGODB.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import mongomock


class AsyncCursor:
    """`async for` over a mongomock cursor; sort/skip/limit chain as on PyMongo's."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def sort(self, *args: Any, **kwargs: Any) -> AsyncCursor:
        self._cursor = self._cursor.sort(*args, **kwargs)
        return self

    def skip(self, count: int) -> AsyncCursor:
        self._cursor = self._cursor.skip(count)
        return self

    def limit(self, count: int) -> AsyncCursor:
        self._cursor = self._cursor.limit(count)
        return self

    def batch_size(self, _size: int) -> AsyncCursor:
        return self

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        for document in self._cursor:
            yield document

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        items = list(self._cursor)
        return items if length is None else items[:length]

    async def close(self) -> None:
        return None


class AsyncCollection:
    """A mongomock collection with PyMongo's async method shapes."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    @property
    def name(self) -> str:
        return str(self._collection.name)

    def find(self, *args: Any, **kwargs: Any) -> AsyncCursor:
        return AsyncCursor(self._collection.find(*args, **kwargs))

    async def aggregate(self, pipeline: list[dict[str, Any]], **kwargs: Any) -> AsyncCursor:
        return AsyncCursor(self._collection.aggregate(pipeline, **kwargs))

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._collection, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            kwargs.pop("session", None)
            return method(*args, **kwargs)

        return call


class AsyncDatabase:
    """A mongomock database with PyMongo's async shapes."""

    def __init__(self, database: Any) -> None:
        self._database = database
        self.name = str(database.name)

    def __getitem__(self, name: str) -> AsyncCollection:
        return AsyncCollection(self._database[name])

    def __getattr__(self, name: str) -> AsyncCollection:
        return self[name]

    async def command(self, command: str | dict[str, Any], **_: Any) -> dict[str, Any]:
        if command == "ping" or command == {"ping": 1}:
            return {"ok": 1.0}
        raise NotImplementedError(f"the double does not run {command!r}")

    async def list_collection_names(self) -> list[str]:
        return list(self._database.list_collection_names())


def mock_database(name: str = "mailramp") -> AsyncDatabase:
    """A fresh, empty in-memory database."""
    return AsyncDatabase(mongomock.MongoClient(tz_aware=True)[name])
