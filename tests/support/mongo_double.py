"""An in-process double of PyMongo's async API over mongomock, for the MongoDB adapter's
conformance suite when no MongoDB server is at hand (MAILRAMP_TEST_MONGODB_URL runs the
same suite against a real one).

PyMongo's AsyncCollection methods are coroutines, except `find`, which returns a cursor
to iterate with `async for` (as here). mongomock runs each call to completion inside the
event loop's thread, so every single-document operation is atomic, as on a server; what
the double cannot show is listed in tests/storage/MONGODB.md.

With `Faults`, the double also fails as a real deployment does: a planned call raises one of
PyMongo's own exceptions (`AutoReconnect`, `NotPrimaryError`, `ServerSelectionTimeoutError`,
`WriteConcernError`, …) before it runs (the server never saw it) or after (it was applied,
and its answer lost: what a failover or a write concern timeout does), or runs a coroutine
first (another process's operation landing between two of ours).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import mongomock

WRITES = frozenset(
    {
        "insert_one",
        "insert_many",
        "update_one",
        "update_many",
        "replace_one",
        "delete_one",
        "delete_many",
        "find_one_and_update",
        "find_one_and_replace",
        "find_one_and_delete",
        "bulk_write",
    }
)


@dataclass
class Fault:
    """One planned failure: the `nth` call of `method` (on `collection`, or any) that
    `when` accepts raises `error` — before the operation, or `after` it was applied — or,
    with `run`, has `run()` awaited just before it."""

    method: str | None = None  # None: any write (WRITES); "*": any call
    error: Exception | None = None  # PyMongo's, or another (a process dying: `kills`)
    kills: bool = False  # every later call raises `error` too, until `Faults.revive()`
    collection: str | None = None
    after: bool = False
    nth: int = 1
    when: Callable[[tuple[Any, ...], dict[str, Any]], bool] | None = None
    run: Callable[[], Awaitable[None]] | None = None
    seen: int = 0
    fired: bool = False

    def matches(
        self, collection: str, method: str, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> bool:
        if self.fired:
            return False
        if self.method is None and method not in WRITES:
            return False
        if self.method not in (None, "*", method):
            return False
        if self.collection is not None and collection != self.collection:
            return False
        if self.when is not None and not self.when(args, kw):
            return False
        self.seen += 1
        return self.seen == self.nth


@dataclass
class Faults:
    """The faults planned on one double, and a log of every call it served."""

    planned: list[Fault] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    dead: Exception | None = None
    _busy: bool = False

    def revive(self) -> None:
        """A new process on the same database: calls are served again."""
        self.dead = None

    def add(self, fault: Fault) -> Fault:
        self.planned.append(fault)
        return fault

    @property
    def fired(self) -> list[Fault]:
        return [fault for fault in self.planned if fault.fired]

    def writes(self) -> list[tuple[str, str]]:
        """The writes served so far, in order."""
        return [call for call in self.calls if call[1] in WRITES]

    async def around(
        self,
        collection: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        call: Callable[[], Any],
    ) -> Any:
        if self._busy:  # a hook's own calls are another process's: never faulted
            return call()
        if self.dead is not None:
            raise self.dead
        self.calls.append((collection, method))
        due = next((f for f in self.planned if f.matches(collection, method, args, kwargs)), None)
        if due is not None and due.run is not None:
            due.fired = True
            self._busy = True
            try:
                await due.run()
            finally:
                self._busy = False
            return call()
        if due is not None and not due.after:
            raise self._fire(due)
        result = call()
        if due is not None:
            raise self._fire(due)
        return result

    def _fire(self, fault: Fault) -> Exception:
        fault.fired = True
        assert fault.error is not None
        if fault.kills:
            self.dead = fault.error
        return fault.error


class AsyncCursor:
    """`async for` over a mongomock cursor; sort/skip/limit chain as on PyMongo's."""

    def __init__(self, cursor: Any, start: Callable[[], Awaitable[Any]] | None = None) -> None:
        self._cursor = cursor
        self._start = start  # the faults' check, run when the first batch is fetched

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
        if self._start is not None:
            await self._start()
        for document in self._cursor:
            yield document

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        if self._start is not None:
            await self._start()
        items = list(self._cursor)
        return items if length is None else items[:length]

    async def close(self) -> None:
        return None


class AsyncCollection:
    """A mongomock collection with PyMongo's async method shapes."""

    def __init__(self, collection: Any, faults: Faults | None = None) -> None:
        self._collection = collection
        self._faults = faults

    @property
    def name(self) -> str:
        return str(self._collection.name)

    @property
    def write_concern(self) -> Any:
        return self._collection.write_concern

    def find(self, *args: Any, **kwargs: Any) -> AsyncCursor:
        cursor = self._collection.find(*args, **kwargs)
        if self._faults is None:
            return AsyncCursor(cursor)
        return AsyncCursor(cursor, lambda: self._check("find", args, kwargs))

    async def _check(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        assert self._faults is not None
        await self._faults.around(self.name, method, args, kwargs, lambda: None)

    async def aggregate(self, pipeline: list[dict[str, Any]], **kwargs: Any) -> AsyncCursor:
        if self._faults is not None:
            await self._check("aggregate", (pipeline,), kwargs)
        return AsyncCursor(self._collection.aggregate(pipeline, **kwargs))

    def with_options(self, **options: Any) -> AsyncCollection:
        return AsyncCollection(self._collection.with_options(**options), self._faults)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._collection, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            kwargs.pop("session", None)
            if self._faults is None:
                return method(*args, **kwargs)
            return await self._faults.around(
                self.name, name, args, kwargs, lambda: method(*args, **kwargs)
            )

        return call


class AsyncDatabase:
    """A mongomock database with PyMongo's async shapes."""

    def __init__(
        self, database: Any, faults: Faults | None = None, options: dict[str, Any] | None = None
    ) -> None:
        self._database = database
        self.name = str(database.name)
        self.faults = faults
        self._options = options or {}

    def __getitem__(self, name: str) -> AsyncCollection:
        collection = self._database[name]
        if self._options:  # mongomock's databases take no write concern; its collections do
            collection = collection.with_options(**self._options)
        return AsyncCollection(collection, self.faults)

    def with_options(self, **options: Any) -> AsyncDatabase:
        return AsyncDatabase(self._database, self.faults, {**self._options, **options})

    def __getattr__(self, name: str) -> AsyncCollection:
        return self[name]

    async def command(self, command: str | dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if command != "ping" and command != {"ping": 1}:
            raise NotImplementedError(f"the double does not run {command!r}")
        if self.faults is not None:
            return dict(
                await self.faults.around(
                    "admin", "command", (command,), kwargs, lambda: {"ok": 1.0}
                )
            )
        return {"ok": 1.0}

    async def list_collection_names(self) -> list[str]:
        return list(self._database.list_collection_names())


def mock_database(name: str = "mailramp", faults: Faults | None = None) -> AsyncDatabase:
    """A fresh, empty in-memory database (failing as `faults` plan)."""
    return AsyncDatabase(mongomock.MongoClient(tz_aware=True)[name], faults)
