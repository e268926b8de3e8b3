"""API keys, sessions and login throttling on SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, select, update

from mailramp.auth.models import ApiKey, AuditEntry, Session
from mailramp.storage.rows import check_page, to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.base import SqlBase

K = tables.api_keys
S = tables.sessions
U = tables.users


class SqlAuth(SqlBase):
    """AuthRepository on SQL."""

    async def insert_audit_entry(self, entry: AuditEntry) -> AuditEntry:
        async with self._write() as connection:
            await connection.execute(tables.audit_log.insert().values(to_row(entry)))
        return entry

    async def list_audit_entries(self, *, offset: int, limit: int) -> list[AuditEntry]:
        check_page(offset, limit)
        log = tables.audit_log
        query = select(log).order_by(log.c.at.desc(), log.c._id.desc()).offset(offset).limit(limit)
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings()
            return [AuditEntry.model_validate(dict(row)) for row in rows]

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

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        # A read: a request with an API key does not queue behind writers (an import).
        condition = and_(K.c.key_hash == key_hash, K.c.revoked_at.is_(None))
        return await self._read_one(ApiKey, select(K).where(condition))

    async def mark_api_key_used(self, key_id: str, *, now: datetime) -> None:
        async with self._write() as connection:
            await connection.execute(update(K).where(K.c._id == key_id).values(last_used_at=now))

    async def revoke_api_key(self, user_id: str, key_id: str, *, now: datetime) -> bool:
        async with self._write() as connection:
            result = await connection.execute(
                update(K)
                .where(K.c._id == key_id, K.c.user_id == user_id, K.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return bool(result.rowcount == 1)

    async def revoke_api_keys(self, user_id: str, *, now: datetime) -> int:
        async with self._write() as connection:
            result = await connection.execute(
                update(K)
                .where(K.c.user_id == user_id, K.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return int(result.rowcount)

    async def remember_webhook_delivery(
        self, delivery_id: str, *, now: datetime, forget_before: datetime
    ) -> bool:
        deliveries = tables.webhook_deliveries
        async with self._write() as connection:
            await connection.execute(
                deliveries.delete().where(deliveries.c.received_at < forget_before)
            )
            result = await connection.execute(
                self._insert(deliveries)
                .values(delivery_id=delivery_id, received_at=now)
                .on_conflict_do_nothing(index_elements=["delivery_id"])
            )
            return bool(result.rowcount == 1)

    async def forget_webhook_delivery(self, delivery_id: str) -> None:
        deliveries = tables.webhook_deliveries
        async with self._write() as connection:
            await connection.execute(
                deliveries.delete().where(deliveries.c.delivery_id == delivery_id)
            )

    async def insert_session(self, session: Session) -> Session:
        async with self._write() as connection:
            await connection.execute(S.insert().values(to_row(session)))
        return session

    async def find_session(self, token_hash: str, *, now: datetime) -> Session | None:
        return await self._read_one(
            Session,
            select(S).where(
                S.c.token_hash == token_hash, S.c.revoked_at.is_(None), S.c.expires_at > now
            ),
        )

    async def revoke_session(self, user_id: str, session_id: str, *, now: datetime) -> bool:
        return await self._revoke(and_(S.c.user_id == user_id, S.c._id == session_id), now) > 0

    async def revoke_sessions(self, user_id: str, *, now: datetime, keep: str | None = None) -> int:
        condition = S.c.user_id == user_id
        if keep is not None:
            condition = and_(condition, S.c._id != keep)
        return await self._revoke(condition, now)

    async def _revoke(self, condition: ColumnElement[bool], now: datetime) -> int:
        async with self._write() as connection:
            result = await connection.execute(
                update(S).where(condition, S.c.revoked_at.is_(None)).values(revoked_at=now)
            )
            return int(result.rowcount)

    async def reserve_login_attempt(
        self, user_id: str, *, seen_failures: int, now: datetime
    ) -> bool:
        # Compare-and-set on the count the caller saw: of attempts racing on one count,
        # exactly one wins, so parallel guesses cannot all pass the same check.
        async with self._write() as connection:
            result = await connection.execute(
                update(U)
                .where(U.c._id == user_id, U.c.failed_logins == seen_failures)
                .values(failed_logins=seen_failures + 1, last_failed_login_at=now)
            )
            return bool(result.rowcount)

    async def reset_login_failures(self, user_id: str) -> None:
        async with self._write() as connection:
            await connection.execute(
                update(U)
                .where(U.c._id == user_id)
                .values(failed_logins=0, last_failed_login_at=None)
            )
