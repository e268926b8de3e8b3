"""Mailboxes on SQL: linking, the primary mailbox, secrets, inbox positions."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailramp.mailboxes.models import SECRET_FIELDS, Mailbox, MailboxDay, check_secret_field
from mailramp.mailboxes.primary import retry_primary
from mailramp.storage.rows import changes_row, to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.base import SqlBase

SECRET_SCAN_BATCH = 500


M = tables.mailboxes


class SqlMailboxes(SqlBase):
    """MailboxRepository on SQL."""

    async def _restore_primary(self, connection: AsyncConnection, user_id: str) -> None:
        """If the user has linked mailboxes but no primary, promote the oldest."""
        boxes = tables.mailboxes
        rows = (
            await connection.execute(
                select(boxes.c._id, boxes.c.is_primary)
                .where(boxes.c.user_id == user_id, boxes.c.unlinked_at.is_(None))
                .order_by(boxes.c.created_at, boxes.c._id)
            )
        ).all()
        if rows and not any(row.is_primary for row in rows):
            await connection.execute(
                update(boxes).where(boxes.c._id == rows[0]._id).values(is_primary=True)
            )

    async def insert_mailbox(self, mailbox: Mailbox) -> Mailbox:
        row = to_row(mailbox) | {"is_primary": False}
        boxes = tables.mailboxes

        async def insert() -> Mailbox:
            async with self._write(row) as connection:
                await connection.execute(boxes.insert().values(row))
                await self._restore_primary(connection, mailbox.user_id)
                stored = await self._one(
                    connection, Mailbox, select(boxes).where(boxes.c._id == mailbox.id)
                )
            assert stored is not None
            return stored

        return await retry_primary(insert)

    def _mailbox_of(self, user_id: str, mailbox_id: str) -> Any:
        boxes = tables.mailboxes
        return and_(boxes.c._id == mailbox_id, boxes.c.user_id == user_id)

    async def get_mailbox(self, user_id: str, mailbox_id: str) -> Mailbox | None:
        return await self._read_one(
            Mailbox, select(tables.mailboxes).where(self._mailbox_of(user_id, mailbox_id))
        )

    async def get_mailbox_unscoped(self, mailbox_id: str) -> Mailbox | None:
        return await self._read_one(Mailbox, select(M).where(M.c._id == mailbox_id))

    async def tracking_domain_in_use(self, domain: str) -> bool:
        query = select(M.c._id).where(
            M.c.tracking_domain == domain,
            M.c.tracking_domain_verified_at.is_not(None),
            M.c.unlinked_at.is_(None),
        )
        async with self._read() as connection:
            return (await connection.execute(query.limit(1))).first() is not None

    async def mailboxes_due_dns_check(self, before: datetime, *, limit: int) -> list[Mailbox]:
        boxes = tables.mailboxes
        query = (
            select(boxes)
            .where(
                boxes.c.unlinked_at.is_(None),
                or_(boxes.c.dns_checked_at.is_(None), boxes.c.dns_checked_at < before),
            )
            .order_by(boxes.c.dns_checked_at.is_not(None), boxes.c.dns_checked_at, boxes.c._id)
            .limit(limit)
        )
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings()
            return [Mailbox.model_validate(dict(row)) for row in rows]

    async def mailbox_days(self, mailbox_id: str, *, since: str | None = None) -> list[MailboxDay]:
        days = tables.mailbox_days
        query = select(days).where(days.c.mailbox_id == mailbox_id)
        if since is not None:
            query = query.where(days.c.day >= since)
        async with self._read() as connection:
            rows = (await connection.execute(query.order_by(days.c.day))).mappings()
            return [MailboxDay.model_validate(dict(row)) for row in rows]

    async def get_mailbox_by_email(self, user_id: str, email: str) -> Mailbox | None:
        boxes = tables.mailboxes
        return await self._read_one(
            Mailbox, select(boxes).where(boxes.c.user_id == user_id, boxes.c.email == email)
        )

    async def linked_mailboxes_with_email(self, email: str) -> list[Mailbox]:
        boxes = tables.mailboxes
        statement = (
            select(boxes)
            .where(boxes.c.email == email, boxes.c.unlinked_at.is_(None))
            .order_by(boxes.c.created_at, boxes.c._id)
        )
        async with self._read() as connection:
            rows = (await connection.execute(statement)).mappings()
            return [Mailbox.model_validate(dict(row)) for row in rows]

    async def list_mailboxes(
        self, user_id: str, *, include_unlinked: bool = False
    ) -> list[Mailbox]:
        boxes = tables.mailboxes
        statement = select(boxes).where(boxes.c.user_id == user_id)
        if not include_unlinked:
            statement = statement.where(boxes.c.unlinked_at.is_(None))
        statement = statement.order_by(boxes.c.is_primary.desc(), boxes.c.created_at, boxes.c._id)
        async with self._read() as connection:
            rows = (await connection.execute(statement)).mappings()
            return [Mailbox.model_validate(dict(row)) for row in rows]

    async def update_mailbox(
        self, user_id: str, mailbox_id: str, changes: Mapping[str, Any]
    ) -> Mailbox | None:
        values = changes_row(changes)
        boxes = tables.mailboxes
        condition = self._mailbox_of(user_id, mailbox_id)

        async def apply() -> Mailbox | None:
            async with self._write(values) as connection:
                if values:
                    await connection.execute(update(boxes).where(condition).values(values))
                await self._restore_primary(connection, user_id)
                return await self._one(connection, Mailbox, select(boxes).where(condition))

        result: Mailbox | None = await retry_primary(apply)
        return result

    async def set_primary_mailbox(self, user_id: str, mailbox_id: str) -> Mailbox | None:
        boxes = tables.mailboxes
        condition = self._mailbox_of(user_id, mailbox_id)
        async with self._write() as connection:
            target = await self._one(connection, Mailbox, select(boxes).where(condition))
            if target is None or not target.is_linked:
                return None
            # Two statements, not one: PostgreSQL checks the partial unique index row by
            # row, so clearing and setting in one UPDATE can collide half-way.
            await connection.execute(
                update(boxes)
                .where(boxes.c.user_id == user_id, boxes.c._id != mailbox_id, boxes.c.is_primary)
                .values(is_primary=False)
            )
            await connection.execute(update(boxes).where(condition).values(is_primary=True))
            return await self._one(connection, Mailbox, select(boxes).where(condition))

    async def iter_mailbox_secrets(self) -> AsyncGenerator[tuple[str, str, str], None]:
        boxes = tables.mailboxes
        columns = [boxes.c[name] for name in SECRET_FIELDS]
        has_secret = [column.is_not(None) for column in columns]
        after = ""
        while True:
            # Keyset pagination on _id: no connection is held while the caller works.
            async with self._read() as connection:
                rows = (
                    (
                        await connection.execute(
                            select(boxes.c._id, *columns)
                            .where(boxes.c._id > after)
                            .where(has_secret[0] | has_secret[1] | has_secret[2])
                            .order_by(boxes.c._id)
                            .limit(SECRET_SCAN_BATCH)
                        )
                    )
                    .mappings()
                    .all()
                )
            if not rows:
                return
            for row in rows:
                for name in SECRET_FIELDS:
                    if row[name] is not None:
                        yield row["_id"], name, row[name]
            after = rows[-1]["_id"]

    async def replace_mailbox_secret(
        self, mailbox_id: str, field: str, *, old: str, new: str
    ) -> bool:
        check_secret_field(field)
        boxes = tables.mailboxes
        async with self._write() as connection:
            result = await connection.execute(
                update(boxes)
                .where(boxes.c._id == mailbox_id, boxes.c[field] == old)
                .values({field: new})
            )
            return bool(result.rowcount == 1)

    async def list_inbox_mailboxes(self) -> list[Mailbox]:
        boxes = tables.mailboxes
        async with self._read() as connection:
            rows = (
                await connection.execute(
                    select(boxes)
                    .where(
                        boxes.c.unlinked_at.is_(None),
                        boxes.c.status == "active",
                        # IMAP hosts, and OAuth mailboxes (read through Graph or Gmail).
                        or_(
                            boxes.c.imap_host.is_not(None),
                            boxes.c.provider.in_(("outlook", "gmail")),
                        ),
                    )
                    .order_by(boxes.c.inbox_checked_at.is_not(None), boxes.c.inbox_checked_at)
                )
            ).mappings()
            return [Mailbox.model_validate(dict(row)) for row in rows]

    async def claim_inbox_check(self, mailbox_id: str, *, now: datetime, interval: float) -> bool:
        boxes = tables.mailboxes
        due = now - timedelta(seconds=interval)
        async with self._write() as connection:
            result = await connection.execute(
                update(boxes)
                .where(
                    boxes.c._id == mailbox_id,
                    (boxes.c.inbox_checked_at.is_(None)) | (boxes.c.inbox_checked_at <= due),
                )
                .values(inbox_checked_at=now)
            )
            return bool(result.rowcount == 1)

    async def save_inbox_position(
        self, mailbox_id: str, *, uid_validity: int, last_uid: int
    ) -> None:
        boxes = tables.mailboxes
        async with self._write() as connection:
            await connection.execute(
                update(boxes)
                .where(boxes.c._id == mailbox_id)
                .values(imap_uid_validity=uid_validity, imap_last_uid=last_uid)
            )
