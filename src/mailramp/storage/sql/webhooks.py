"""Outgoing webhooks on SQL: endpoints, their queued messages and the attempts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.orm import aliased

from mailramp.kit.types import Page
from mailramp.storage.rows import changes_row, check_page, to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.base import SqlBase
from mailramp.webhooks.models import (
    AttemptResult,
    MessageStatus,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    endpoint_changes,
)
from mailramp.webhooks.repository import MessageQuery

E = tables.webhook_endpoints
M = tables.webhook_messages
A = tables.webhook_attempts
PENDING = MessageStatus.PENDING.value


class SqlWebhooks(SqlBase):
    async def add_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        async with self._write() as connection:
            await connection.execute(E.insert().values(to_row(endpoint)))

    async def get_webhook_endpoint(self, user_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        query = select(E).where(E.c._id == endpoint_id, E.c.user_id == user_id)
        return await self._read_one(WebhookEndpoint, query)

    async def list_webhook_endpoints(self, user_id: str) -> list[WebhookEndpoint]:
        query = select(E).where(E.c.user_id == user_id).order_by(E.c.created_at, E.c._id)
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings()
            return [WebhookEndpoint.model_validate(dict(row)) for row in rows]

    async def update_webhook_endpoint(
        self, user_id: str, endpoint_id: str, changes: Mapping[str, Any]
    ) -> WebhookEndpoint | None:
        mine = and_(E.c._id == endpoint_id, E.c.user_id == user_id)
        async with self._write() as connection:
            if changes:
                await connection.execute(update(E).where(mine).values(changes_row(changes)))
            return await self._one(connection, WebhookEndpoint, select(E).where(mine))

    async def delete_webhook_endpoint(self, user_id: str, endpoint_id: str) -> bool:
        async with self._write() as connection:
            messages = select(M.c._id).where(M.c.endpoint_id == endpoint_id)
            await connection.execute(delete(A).where(A.c.message_id.in_(messages)))
            await connection.execute(delete(M).where(M.c.endpoint_id == endpoint_id))
            gone = await connection.execute(
                delete(E).where(E.c._id == endpoint_id, E.c.user_id == user_id)
            )
        return bool(gone.rowcount)

    async def all_webhook_endpoints(self) -> list[WebhookEndpoint]:
        query = select(E).order_by(E.c.created_at, E.c._id)
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings()
            return [WebhookEndpoint.model_validate(dict(row)) for row in rows]

    async def replace_webhook_secret(
        self, endpoint_id: str, field: str, *, old: str, new: str
    ) -> bool:
        async with self._write() as connection:
            replaced = await connection.execute(
                update(E).where(E.c._id == endpoint_id, E.c[field] == old).values({field: new})
            )
        return bool(replaced.rowcount)

    async def enabled_webhook_endpoints(self) -> list[WebhookEndpoint]:
        query = select(E).where(E.c.enabled.is_(True)).order_by(E.c.created_at, E.c._id)
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings()
            return [WebhookEndpoint.model_validate(dict(row)) for row in rows]

    async def queue_webhook_messages(
        self,
        endpoint_id: str,
        messages: Sequence[WebhookMessage],
        *,
        cursor_from: int,
        cursor_to: int,
    ) -> bool:
        async with self._write() as connection:
            moved = await connection.execute(
                update(E)
                .where(E.c._id == endpoint_id, E.c.cursor == cursor_from)
                .values(cursor=cursor_to)
            )
            if not moved.rowcount:
                return False
            if messages:
                await connection.execute(
                    self._insert(M).on_conflict_do_nothing(
                        index_elements=["endpoint_id", "event_id"]
                    ),
                    [to_row(message) for message in messages],
                )
        return True

    async def resume_webhook_messages(self, endpoint_id: str, *, now: datetime) -> int:
        async with self._write() as connection:
            resumed = await connection.execute(
                update(M)
                .where(M.c.endpoint_id == endpoint_id, M.c.status == PENDING)
                .values(next_attempt_at=now, updated_at=now)
            )
        return int(resumed.rowcount)

    async def add_webhook_message(self, message: WebhookMessage) -> None:
        async with self._write() as connection:
            await connection.execute(M.insert().values(to_row(message)))

    async def claim_webhook_messages(
        self, *, now: datetime, lease_until: datetime, limit: int
    ) -> list[WebhookMessage]:
        earlier = aliased(M)
        free = (M.c.lease_until.is_(None)) | (M.c.lease_until < now)
        due = (
            select(M.c._id)
            .join(E, and_(E.c._id == M.c.endpoint_id, E.c.enabled.is_(True)))
            .where(
                M.c.status == PENDING,
                M.c.next_attempt_at <= now,
                free,
                ~exists().where(
                    earlier.c.endpoint_id == M.c.endpoint_id,
                    earlier.c.person == M.c.person,
                    earlier.c.status == PENDING,
                    earlier.c.seq < M.c.seq,
                ),
            )
            .order_by(M.c.next_attempt_at, M.c.seq)
            .limit(limit)
        )
        # Looked for in a read (an idle worker never takes SQLite's one writer for this),
        # then leased in a write that checks again: of two claimers, one gets each message.
        async with self._read() as connection:
            ids = list((await connection.execute(due)).scalars())
        if not ids:
            return []
        async with self._write() as connection:
            claimed = await connection.execute(
                update(M)
                .where(M.c._id.in_(ids), M.c.status == PENDING, free)
                .values(lease_until=lease_until)
                .returning(*M.c)
            )
            rows = claimed.mappings().all()
        messages = [WebhookMessage.model_validate(dict(row)) for row in rows]
        return sorted(messages, key=lambda m: (m.next_attempt_at or now, m.seq or 0))

    async def record_webhook_attempts(self, results: Sequence[AttemptResult]) -> None:
        if not results:
            return
        async with self._write() as connection:
            await connection.execute(A.insert(), [to_row(r.attempt) for r in results])
            for result in results:
                attempt = result.attempt
                at = attempt.attempted_at
                delivered = result.status is MessageStatus.DELIVERED
                await connection.execute(
                    update(M)
                    .where(M.c._id == attempt.message_id)
                    .values(
                        status=result.status.value,
                        attempts=M.c.attempts + 1,
                        next_attempt_at=result.next_attempt_at,
                        lease_until=None,
                        last_status_code=attempt.status_code,
                        last_error=attempt.error,
                        delivered_at=at if delivered else M.c.delivered_at,
                        updated_at=at,
                    )
                )
            for endpoint_id, changes in endpoint_changes(results).items():
                values: dict[str, Any] = dict(changes)
                if values.get("failing_since") and "last_success_at" not in values:
                    values["failing_since"] = func.coalesce(
                        E.c.failing_since, values["failing_since"]
                    )
                await connection.execute(update(E).where(E.c._id == endpoint_id).values(values))

    async def list_webhook_messages(
        self, user_id: str, query: MessageQuery
    ) -> Page[WebhookMessage]:
        check_page(query.offset, query.limit)
        condition = and_(M.c.endpoint_id == query.endpoint_id, M.c.user_id == user_id)
        if query.status is not None:
            condition = and_(condition, M.c.status == query.status.value)
        order = (M.c.created_at.desc(), M.c.seq.desc(), M.c._id.desc())
        async with self._read() as connection:
            return await self._page(
                connection, WebhookMessage, M, condition, order, query.offset, query.limit
            )

    async def get_webhook_message(self, user_id: str, message_id: str) -> WebhookMessage | None:
        query = select(M).where(M.c._id == message_id, M.c.user_id == user_id)
        return await self._read_one(WebhookMessage, query)

    async def list_webhook_attempts(self, user_id: str, message_id: str) -> list[WebhookAttempt]:
        query = (
            select(A)
            .where(A.c.message_id == message_id, A.c.user_id == user_id)
            .order_by(A.c.attempted_at, A.c._id)
        )
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings()
            return [WebhookAttempt.model_validate(dict(row)) for row in rows]

    async def redeliver_webhook_message(
        self, user_id: str, message_id: str, *, now: datetime
    ) -> WebhookMessage | None:
        mine = and_(M.c._id == message_id, M.c.user_id == user_id)
        async with self._write() as connection:
            await connection.execute(
                update(M)
                .where(mine)
                .values(
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    lease_until=None,
                    updated_at=now,
                )
            )
            return await self._one(connection, WebhookMessage, select(M).where(mine))
