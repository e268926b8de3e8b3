"""The instance's own encrypted secrets (tracking keys) on SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from mailramp.storage.sql import tables
from mailramp.storage.sql.base import SqlBase


class SqlSecrets(SqlBase):
    """InstanceSecretRepository on SQL."""

    async def get_instance_secret(self, name: str) -> str | None:
        secrets = tables.instance_secrets
        async with self._read() as connection:
            value = (
                await connection.execute(select(secrets.c.value).where(secrets.c.name == name))
            ).scalar_one_or_none()
        return None if value is None else str(value)

    async def add_instance_secret(self, name: str, value: str, *, now: datetime) -> str:
        secrets = tables.instance_secrets
        async with self._write() as connection:
            # Several processes may start at once: the first insert wins, the others read it.
            await connection.execute(
                self._insert(secrets)
                .values(name=name, value=value, created_at=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            stored = (
                await connection.execute(select(secrets.c.value).where(secrets.c.name == name))
            ).scalar_one()
        return str(stored)

    async def replace_instance_secret(
        self, name: str, *, old: str, new: str, now: datetime
    ) -> bool:
        secrets = tables.instance_secrets
        async with self._write() as connection:
            result = await connection.execute(
                update(secrets)
                .where(secrets.c.name == name, secrets.c.value == old)
                .values(value=new, updated_at=now)
            )
            return bool(result.rowcount == 1)
