"""The one place where PyMongo's "the server cannot be used now" errors become
`DatabaseUnavailableError`, for every operation of the MongoDB adapter.

The adapter's query methods reach the database only through `GuardedDatabase` (MongoBase
wraps whatever it is given: PyMongo's AsyncDatabase or the test double), whose collections
and cursors translate, on every call and every `async for` step:

- `ConnectionFailure` and its kin — `AutoReconnect`, `NotPrimaryError` (an election, a
  step-down), `NetworkTimeout`, `ServerSelectionTimeoutError` (no primary within
  serverSelectionTimeoutMS), `ExecutionTimeout`, and any error PyMongo marks as a timeout
  (`error.timeout`, the client-side operation timeout);
- `WriteConcernError` (incl. `WTimeoutError`): the write reached the primary but not the
  majority in time — its fate is unknown until the set settles, so it is reported as an
  outage, never as success (but a write concern the deployment can never satisfy is the
  `ConfigurationError` it is: waiting would not end it);
- a `BulkWriteError` carrying write-concern errors (an `insert_many` acknowledged by the
  primary only), and an `OperationFailure` whose code says the node is shutting down,
  not (or no longer) primary, or out of time.

Everything else (a duplicate key, a bad query) stays what it is: a statement's problem,
which the adapter's callers handle. The worker waits out `DatabaseUnavailableError` and
keeps what it still has to store (sending/worker.py); the web answers 503.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, NoReturn

from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
)
from pymongo.errors import ConfigurationError as PyMongoConfigurationError

from mailramp.errors import ConfigurationError, DatabaseUnavailableError

# Server error codes that mean "this node cannot serve you now", not "your statement is
# wrong": HostUnreachable, HostNotFound, MaxTimeMSExpired, NetworkTimeout,
# ShutdownInProgress, PrimarySteppedDown, ExceededTimeLimit, SocketException,
# NotWritablePrimary, InterruptedAtShutdown, InterruptedDueToReplStateChange,
# NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary.
UNAVAILABLE_CODES = frozenset(
    {6, 7, 43, 50, 89, 91, 175, 189, 262, 9001, 10107, 11600, 11601, 11602, 13435, 13436}
)
"""… and, after a failover: CursorNotFound (43), QueryPlanKilled (175), Interrupted (11601)."""

# A write concern the deployment can never satisfy (more members than it has, an unknown
# tag set): not an outage to wait out, a setting to fix.
UNSATISFIABLE_CODES = frozenset({79, 100})


def is_unavailable(error: PyMongoError) -> bool:
    """Whether `error` says the server cannot be used now (rather than that the statement
    is wrong)."""
    if isinstance(error, WriteConcernError):
        return error.code not in UNSATISFIABLE_CODES
    if isinstance(error, ConnectionFailure | ExecutionTimeout):
        return True
    if isinstance(error, PyMongoConfigurationError):
        # mongodb+srv:// names are resolved at the first operation: a DNS timeout then is
        # an outage; a name that does not exist stays the configuration error it is.
        return "timed out" in str(error) or "timeout" in str(error).lower()
    if getattr(error, "timeout", False):
        return True
    if isinstance(error, BulkWriteError):
        return bool((error.details or {}).get("writeConcernErrors"))
    if isinstance(error, OperationFailure):
        return error.code in UNAVAILABLE_CODES
    return False


def unavailable(error: PyMongoError) -> DatabaseUnavailableError:
    """The DatabaseUnavailableError `error` stands for: one line, without credentials (a
    PyMongo message names hosts and ports, never the URL's password)."""
    reason = str(error).strip().split("\n", 1)[0] or type(error).__name__
    if isinstance(error, WriteConcernError | BulkWriteError):
        reason = f"a write was not acknowledged by a majority in time ({reason})"
    return DatabaseUnavailableError(f"the database is unreachable (mongodb): {reason[:300]}")


def _raise(error: PyMongoError) -> NoReturn:
    if is_unavailable(error):
        raise unavailable(error) from error
    if isinstance(error, WriteConcernError) and error.code in UNSATISFIABLE_CODES:
        raise ConfigurationError(
            f"MongoDB refuses the write concern: {str(error).splitlines()[0][:200]} — set "
            "MAILRAMP_MONGODB_WRITE_CONCERN to what the replica set can acknowledge "
            "(docs/deployment.md#mongodb)"
        ) from error
    raise error


def _guarded_call(
    method: Callable[..., Coroutine[Any, Any, Any]], wrap: Callable[[Any], Any] | None = None
) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            result = await method(*args, **kwargs)
        except PyMongoError as error:
            _raise(error)
        return result if wrap is None else wrap(result)

    return call


class GuardedCursor:
    """A cursor whose every step maps unavailability; sort/skip/limit chain as on
    PyMongo's."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def sort(self, *args: Any, **kwargs: Any) -> GuardedCursor:
        self._cursor = self._cursor.sort(*args, **kwargs)
        return self

    def skip(self, count: int) -> GuardedCursor:
        self._cursor = self._cursor.skip(count)
        return self

    def limit(self, count: int) -> GuardedCursor:
        self._cursor = self._cursor.limit(count)
        return self

    def batch_size(self, size: int) -> GuardedCursor:
        self._cursor = self._cursor.batch_size(size)
        return self

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        iterator = self._cursor.__aiter__()
        while True:
            try:
                document = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except PyMongoError as error:
                _raise(error)
            yield document

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        return list(await _guarded_call(self._cursor.to_list)(length))

    async def close(self) -> None:
        await self._cursor.close()


class GuardedCollection:
    """A collection whose coroutine methods and cursors map unavailability."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    @property
    def raw(self) -> Any:
        return self._collection

    def find(self, *args: Any, **kwargs: Any) -> GuardedCursor:
        return GuardedCursor(self._collection.find(*args, **kwargs))

    async def aggregate(self, *args: Any, **kwargs: Any) -> GuardedCursor:
        aggregate = _guarded_call(self._collection.aggregate, GuardedCursor)
        return await aggregate(*args, **kwargs)  # type: ignore[no-any-return]

    def with_options(self, **options: Any) -> GuardedCollection:
        return GuardedCollection(self._collection.with_options(**options))

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._collection, name)
        if inspect.iscoroutinefunction(attribute):
            return _guarded_call(attribute)
        return attribute


class GuardedDatabase:
    """A database whose collections are GuardedCollections and whose commands map
    unavailability."""

    def __init__(self, database: Any) -> None:
        self._database = database

    @property
    def raw(self) -> Any:
        """The database as given (what tests and the upgrade read raw documents from)."""
        return self._database

    def __getitem__(self, name: str) -> GuardedCollection:
        return GuardedCollection(self._database[name])

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._database, name)
        if inspect.iscoroutinefunction(attribute):
            return _guarded_call(attribute)
        return attribute


def guarded(database: Any) -> GuardedDatabase:
    """`database` behind the mapping (once: a guarded database is returned as it is)."""
    return database if isinstance(database, GuardedDatabase) else GuardedDatabase(database)
