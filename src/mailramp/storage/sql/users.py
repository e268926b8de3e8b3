"""Users on SQL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update

from mailramp.accounts.models import User
from mailramp.storage.rows import changes_row, to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.base import SqlBase


class SqlUsers(SqlBase):
    """UserRepository on SQL."""

    async def insert_user(self, user: User) -> User:
        row = to_row(user)
        async with self._write(row) as connection:
            await connection.execute(tables.users.insert().values(row))
        return user

    async def get_user(self, user_id: str) -> User | None:
        return await self._read_one(User, select(tables.users).where(tables.users.c._id == user_id))

    async def get_user_by_login_id(self, login_id: str) -> User | None:
        return await self._read_one(
            User, select(tables.users).where(tables.users.c.login_id == login_id)
        )

    async def get_user_by_email(self, email: str) -> User | None:
        return await self._read_one(User, select(tables.users).where(tables.users.c.email == email))

    async def get_user_by_clerk_id(self, clerk_user_id: str) -> User | None:
        return await self._read_one(
            User, select(tables.users).where(tables.users.c.clerk_user_id == clerk_user_id)
        )

    async def update_user(self, user_id: str, changes: Mapping[str, Any]) -> User | None:
        values = changes_row(changes)
        users = tables.users
        async with self._write(values) as connection:
            if values:
                await connection.execute(update(users).where(users.c._id == user_id).values(values))
            return await self._one(connection, User, select(users).where(users.c._id == user_id))

    async def any_user(self) -> bool:
        async with self._read() as connection:
            return await connection.scalar(select(tables.users.c._id).limit(1)) is not None

    async def list_users(self) -> list[User]:
        users = tables.users
        async with self._read() as connection:
            rows = (
                await connection.execute(select(users).order_by(users.c.created_at, users.c._id))
            ).mappings()
            return [User.model_validate(dict(row)) for row in rows]
