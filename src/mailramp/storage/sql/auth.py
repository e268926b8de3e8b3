"""API keys, sessions and login throttling on SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select, update

from mailramp.auth.models import ApiKey, Session
from mailramp.storage.rows import to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.events import SqlTracking

K = tables.api_keys
S = tables.sessions
U = tables.users


class SqlAuth(SqlTracking):
    """AuthRepository on SQL."""

    async def insert_api_key(self, key: ApiKey) -> ApiKey:
        async with self._write() as connection:
            await connection.execute(K.insert().values(to_row(key)))
        return key

    async def list_api_keys(self, user_id: str) -> list[ApiKey]:
        async with self._read() as connection:
            rows = (
                await connection.execute(
                    select(K)
                    .where(K.c.user_id == user_id)
                    .order_by(K.c.created_at.desc(), K.c._id.desc())
                )
            ).mappings()
            return [ApiKey.model_validate(dict(row)) for row in rows]

    async def find_api_key(self, key_hash: str, *, now: datetime) -> ApiKey | None:
        condition = and_(K.c.key_hash == key_hash, K.c.revoked_at.is_(None))
        async with self._write() as connection:
            key = await self._one(connection, ApiKey, select(K).where(condition))
            if key is not None:
                await connection.execute(
                    update(K).where(K.c._id == key.id).values(last_used_at=now)
                )
            return key

    async def revoke_api_key(self, user_id: str, key_id: str, *, now: datetime) -> bool:
        async with self._write() as connection:
            result = await connection.execute(
                update(K)
                .where(K.c._id == key_id, K.c.user_id == user_id, K.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return bool(result.rowcount == 1)

    async def insert_session(self, session: Session) -> Session:
        async with self._write() as connection:
            await connection.execute(S.insert().values(to_row(session)))
        return session

    async def find_session(self, token_hash: str, *, now: datetime) -> Session | None:
        async with self._read() as connection:
            return await self._one(
                connection,
                Session,
                select(S).where(
                    S.c.token_hash == token_hash, S.c.revoked_at.is_(None), S.c.expires_at > now
                ),
            )

    async def revoke_sessions(
        self,
        user_id: str,
        *,
        now: datetime,
        except_id: str | None = None,
        only_id: str | None = None,
    ) -> int:
        condition = and_(S.c.user_id == user_id, S.c.revoked_at.is_(None))
        if except_id is not None:
            condition = and_(condition, S.c._id != except_id)
        if only_id is not None:
            condition = and_(condition, S.c._id == only_id)
        async with self._write() as connection:
            result = await connection.execute(update(S).where(condition).values(revoked_at=now))
            return int(result.rowcount)

    async def record_login_failure(self, user_id: str, *, now: datetime) -> int:
        async with self._write() as connection:
            result = await connection.execute(
                update(U)
                .where(U.c._id == user_id)
                .values(failed_logins=U.c.failed_logins + 1, last_failed_login_at=now)
                .returning(U.c.failed_logins)
            )
            row = result.first()
            return int(row[0]) if row else 0

    async def reset_login_failures(self, user_id: str) -> None:
        async with self._write() as connection:
            await connection.execute(
                update(U)
                .where(U.c._id == user_id)
                .values(failed_logins=0, last_failed_login_at=None)
            )
