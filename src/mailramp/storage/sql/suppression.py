"""The suppression list on SQL."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailramp.kit.types import Page
from mailramp.storage.rows import to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.base import SqlBase
from mailramp.suppression.models import Suppression

S = tables.suppressions


class SqlSuppression(SqlBase):
    """SuppressionRepository on SQL."""

    async def _suppressed_in(
        self, connection: AsyncConnection, user_id: str, emails: Collection[str]
    ) -> set[str]:
        if not emails:
            return set()
        rows = await connection.execute(
            select(S.c.email).where(S.c.user_id == user_id, S.c.email.in_(list(emails)))
        )
        return set(rows.scalars())

    async def _suppress(self, connection: AsyncConnection, suppression: Suppression) -> bool:
        result = await connection.execute(
            self._insert(S)
            .on_conflict_do_nothing(index_elements=["user_id", "email"])
            .returning(S.c._id),
            [to_row(suppression)],
        )
        return bool(result.all())

    async def add_suppression(self, suppression: Suppression) -> bool:
        async with self._write() as connection:
            return await self._suppress(connection, suppression)

    async def suppressed_among(self, user_id: str, emails: Collection[str]) -> set[str]:
        async with self._read() as connection:
            return await self._suppressed_in(connection, user_id, emails)

    async def list_suppressions(
        self, user_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[Suppression]:
        order = (S.c.created_at.desc(), S.c._id.desc())
        async with self._read() as connection:
            return await self._page(
                connection, Suppression, S, S.c.user_id == user_id, order, offset, limit
            )

    async def remove_suppression(self, user_id: str, email: str) -> bool:
        async with self._write() as connection:
            result = await connection.execute(
                delete(S).where(and_(S.c.user_id == user_id, S.c.email == email))
            )
            return bool(result.rowcount)
