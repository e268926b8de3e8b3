"""What every part of the SQL Store shares: engines, transactions, row mapping.

Each public method is one transaction. Writes go through `_write()` (BEGIN IMMEDIATE on
SQLite), reads through `_read()`. Every query on tenant data has `user_id` in its WHERE
clause; the only unscoped methods say so in their names or docstrings.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Self, TypeVar

from pydantic import BaseModel
from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mailramp.errors import DatabaseUnavailableError
from mailramp.kit.types import Page
from mailramp.metrics.models import COUNTERS, derived_fields
from mailramp.storage.rows import check_page
from mailramp.storage.sql import tables
from mailramp.storage.sql.engine import create_engines
from mailramp.storage.sql.errors import translate_integrity_error, unavailable_error

ModelT = TypeVar("ModelT", bound=BaseModel)


class SqlBase:
    """Engines and the transaction helpers every query method uses."""

    def __init__(self, writer: AsyncEngine, reader: AsyncEngine | None = None) -> None:
        self._writer = writer
        self._reader = reader or writer
        self.backend: str = writer.dialect.name
        # SQLite has one writer at a time. Queuing this process's writers here, instead of
        # in SQLite's busy handler (which sleeps and polls), keeps write latency low; other
        # processes still queue on BEGIN IMMEDIATE.
        self._write_lock = asyncio.Lock() if self.backend == "sqlite" else None

    @classmethod
    def from_url(cls, database_url: str, *, pool_size: int = 10, max_overflow: int = 10) -> Self:
        """A store on the database the URL names (sqlite:///… or postgresql://…)."""
        writer, reader = create_engines(
            database_url, pool_size=pool_size, max_overflow=max_overflow
        )
        return cls(writer, reader)

    @property
    def engine(self) -> AsyncEngine:
        """The engine writes (and migrations) go through."""
        return self._writer

    async def close(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()

    # -- transactions -----------------------------------------------------------------

    @asynccontextmanager
    async def _write(self, values: dict[str, Any] | None = None) -> AsyncIterator[AsyncConnection]:
        async with self._write_lock or contextlib.nullcontext():
            connected = False
            try:
                async with self._writer.begin() as connection:
                    connected = True
                    yield connection
            except IntegrityError as error:
                raise translate_integrity_error(error, values) from None
            except (DBAPIError, OSError) as error:
                if (problem := self._unavailable(error, connected)) is None:
                    raise
                raise problem from error

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        connected = False
        try:
            async with self._reader.connect() as connection:
                connected = True
                yield connection
        except (DBAPIError, OSError) as error:
            if (problem := self._unavailable(error, connected)) is None:
                raise
            raise problem from error

    def _unavailable(
        self, error: DBAPIError | OSError, connected: bool
    ) -> DatabaseUnavailableError | None:
        # A database that cannot be reached is one error everywhere (503, a worker that
        # waits, exit code 5), whichever query hit it; any other error stays as it is.
        return unavailable_error(error, self._writer.url, connecting=not connected)

    async def _one(
        self, connection: AsyncConnection, model: type[ModelT], statement: Any
    ) -> ModelT | None:
        row = (await connection.execute(statement)).mappings().first()
        return None if row is None else model.model_validate(dict(row))

    async def _read_one(self, model: type[ModelT], statement: Any) -> ModelT | None:
        """The first row `statement` selects, as `model`, in a read of its own."""
        async with self._read() as connection:
            return await self._one(connection, model, statement)

    async def _page(
        self,
        connection: AsyncConnection,
        model: type[ModelT],
        table: Table,
        condition: Any,
        order: Sequence[Any],
        offset: int,
        limit: int,
    ) -> Page[ModelT]:
        check_page(offset, limit)
        total = (
            await connection.execute(select(func.count()).select_from(table).where(condition))
        ).scalar_one()
        rows = (
            await connection.execute(
                select(table).where(condition).order_by(*order).offset(offset).limit(limit)
            )
        ).mappings()
        items = [model.model_validate(dict(row)) for row in rows]
        return Page[model](items=items, total=total, offset=offset, limit=limit)  # type: ignore[valid-type]

    # -- schema -----------------------------------------------------------------------

    def _insert(self, table: Any) -> Any:
        """An INSERT in this dialect (for its ON CONFLICT clauses)."""
        dialect = postgresql if self.backend == "postgresql" else sqlite
        return dialect.insert(table)

    async def ping(self) -> None:
        async with self._read() as connection:
            await connection.exec_driver_sql("SELECT 1")

    async def schema_version(self) -> str | None:
        """The applied Alembic revision, or None when the database has never been migrated."""
        try:
            async with self._read() as connection:
                result = await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
                return result.scalar_one_or_none()
        except DBAPIError:
            return None

    async def _increment(
        self, connection: AsyncConnection, campaign_id: str, deltas: Mapping[str, int], now: Any
    ) -> bool:
        """Add to counters and recompute delivered and the rates, inside `connection`'s
        transaction. False if the campaign has no metrics document."""
        metrics = tables.metrics
        condition = metrics.c.campaign_id == campaign_id
        # The first UPDATE takes the row lock and returns the new counters, so the derived
        # fields written next are computed from values no one else can change before commit.
        counters = (
            (
                await connection.execute(
                    update(metrics)
                    .where(condition)
                    .values({name: metrics.c[name] + delta for name, delta in deltas.items()})
                    .values(last_updated=now)
                    .returning(*(metrics.c[name] for name in COUNTERS))
                )
            )
            .mappings()
            .first()
        )
        if counters is None:
            return False
        await connection.execute(
            update(metrics).where(condition).values(derived_fields(dict(counters)))
        )
        return True
