"""Engines for a database URL, with each backend's settings for safe concurrent use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mailramp.config import backend_of

SQLITE_BUSY_TIMEOUT_SECONDS = 30


def async_url(database_url: str) -> URL:
    """The URL with the asyncio driver mailramp uses for its backend."""
    url = make_url(database_url)
    backend = backend_of(database_url)
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    # libpq's `sslmode` (what most providers hand out) is asyncpg's `ssl`.
    query = dict(url.query)
    if "sslmode" in query and "ssl" not in query:
        query["ssl"] = query.pop("sslmode")
    return url.set(drivername="postgresql+asyncpg", query=query)


def sqlite_path(database_url: str) -> Path | None:
    """The file an SQLite URL points at (None for in-memory or non-SQLite URLs)."""
    url = make_url(database_url)
    if backend_of(database_url) != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def create_engines(
    database_url: str, *, pool_size: int = 10, max_overflow: int = 10
) -> tuple[AsyncEngine, AsyncEngine]:
    """A (writer, reader) pair of engines. On PostgreSQL they are the same engine.

    SQLite allows one writer at a time. Write transactions start with BEGIN IMMEDIATE so they
    queue on the database lock (busy_timeout) instead of failing when a read transaction
    tries to upgrade to a write; reads use plain BEGIN and run beside the writer (WAL).
    The pool sizes apply to PostgreSQL (SQLite opens a connection per use).
    """
    url = async_url(database_url)
    if url.get_backend_name() != "sqlite":
        # hide_parameters: a database error's message never carries the values (addresses,
        # message bodies, ciphertexts) into logs or tracebacks.
        engine = create_async_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=max_overflow,
            hide_parameters=True,
        )
        return engine, engine
    path = sqlite_path(database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    writer = _sqlite_engine(url, begin="BEGIN IMMEDIATE")
    reader = _sqlite_engine(url, begin="BEGIN")
    return writer, reader


def _sqlite_engine(url: URL, *, begin: str) -> AsyncEngine:
    engine = create_async_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, hide_parameters=True
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see `_on_begin`).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine
