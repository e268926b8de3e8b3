"""The SQL Store: every repository protocol on SQLAlchemy Core.

Each public method is one transaction. Writes go through `_write()` (BEGIN IMMEDIATE on
SQLite), reads through `_read()`. Every query on tenant data has `user_id` in its WHERE
clause; the only unscoped methods say so in their names or docstrings.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailramp.accounts.models import User
from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.kit.ids import is_object_id, new_object_id
from mailramp.kit.types import Page
from mailramp.legacy.models import LegacyCollection, LegacyDocument
from mailramp.mailboxes.models import SECRET_FIELDS, Mailbox
from mailramp.mailboxes.primary import retry_primary
from mailramp.metrics.models import COUNTERS, CampaignMetrics
from mailramp.storage.rows import changes_row, to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.auth import SqlAuth
from mailramp.tracking.models import EmailTracking, TrackingStatus

SECRET_SCAN_BATCH = 500
LEGACY_BATCH = 500

_LEGACY_TABLES = {
    LegacyCollection.WARM_UP_EMAILS: tables.warm_up_emails,
    LegacyCollection.EMAIL_CAMPAIGNS: tables.email_campaigns,
}


class SqlStore(SqlAuth):
    """The Store on SQLite or PostgreSQL."""

    # -- users ------------------------------------------------------------------------

    async def insert_user(self, user: User) -> User:
        row = to_row(user)
        async with self._write(row) as connection:
            await connection.execute(tables.users.insert().values(row))
        return user

    async def get_user(self, user_id: str) -> User | None:
        async with self._read() as connection:
            return await self._one(
                connection, User, select(tables.users).where(tables.users.c._id == user_id)
            )

    async def get_user_by_login_id(self, login_id: str) -> User | None:
        async with self._read() as connection:
            return await self._one(
                connection, User, select(tables.users).where(tables.users.c.login_id == login_id)
            )

    async def get_user_by_email(self, email: str) -> User | None:
        async with self._read() as connection:
            return await self._one(
                connection, User, select(tables.users).where(tables.users.c.email == email)
            )

    async def get_user_by_clerk_id(self, clerk_user_id: str) -> User | None:
        async with self._read() as connection:
            return await self._one(
                connection,
                User,
                select(tables.users).where(tables.users.c.clerk_user_id == clerk_user_id),
            )

    async def update_user(self, user_id: str, changes: Mapping[str, Any]) -> User | None:
        values = changes_row(changes)
        users = tables.users
        async with self._write(values) as connection:
            if values:
                await connection.execute(update(users).where(users.c._id == user_id).values(values))
            return await self._one(connection, User, select(users).where(users.c._id == user_id))

    # -- mailboxes --------------------------------------------------------------------

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
        async with self._read() as connection:
            return await self._one(
                connection,
                Mailbox,
                select(tables.mailboxes).where(self._mailbox_of(user_id, mailbox_id)),
            )

    async def get_mailbox_by_email(self, user_id: str, email: str) -> Mailbox | None:
        boxes = tables.mailboxes
        async with self._read() as connection:
            return await self._one(
                connection,
                Mailbox,
                select(boxes).where(boxes.c.user_id == user_id, boxes.c.email == email),
            )

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
        if field not in SECRET_FIELDS:
            raise ValueError(f"{field!r} is not a secret field")
        boxes = tables.mailboxes
        async with self._write() as connection:
            result = await connection.execute(
                update(boxes)
                .where(boxes.c._id == mailbox_id, boxes.c[field] == old)
                .values({field: new})
            )
            return bool(result.rowcount == 1)

    # -- instance secrets ---------------------------------------------------------------

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

    # -- campaigns --------------------------------------------------------------------

    async def insert_campaign(self, campaign: Campaign, metrics: CampaignMetrics) -> Campaign:
        row = to_row(campaign)
        async with self._write(row) as connection:
            await connection.execute(tables.campaigns.insert().values(row))
            await connection.execute(tables.metrics.insert().values(to_row(metrics)))
        return campaign

    def _campaign_of(self, user_id: str, campaign_id: str) -> Any:
        campaigns = tables.campaigns
        return and_(campaigns.c.campaign_id == campaign_id, campaigns.c.user_id == user_id)

    async def get_campaign(self, user_id: str, campaign_id: str) -> Campaign | None:
        async with self._read() as connection:
            return await self._one(
                connection,
                Campaign,
                select(tables.campaigns).where(self._campaign_of(user_id, campaign_id)),
            )

    async def list_campaigns(
        self,
        user_id: str,
        *,
        statuses: Collection[CampaignStatus] | None = None,
        mailbox_id: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[Campaign]:
        campaigns = tables.campaigns
        condition = campaigns.c.user_id == user_id
        if statuses is not None:
            condition = and_(condition, campaigns.c.status.in_([str(s) for s in statuses]))
        if mailbox_id is not None:
            condition = and_(condition, campaigns.c.mailbox_id == mailbox_id)
        order = (campaigns.c.created_at.desc(), campaigns.c._id.desc())
        async with self._read() as connection:
            return await self._page(
                connection, Campaign, campaigns, condition, order, offset, limit
            )

    async def update_campaign(
        self,
        user_id: str,
        campaign_id: str,
        changes: Mapping[str, Any],
        *,
        expected_status: CampaignStatus,
    ) -> Campaign | None:
        values = changes_row(changes)
        campaigns = tables.campaigns
        condition = self._campaign_of(user_id, campaign_id)
        async with self._write(values) as connection:
            result = await connection.execute(
                update(campaigns)
                .where(condition, campaigns.c.status == expected_status.value)
                .values(values)
            )
            if result.rowcount != 1:
                return None
            if "mailbox_id" in values:
                await connection.execute(
                    update(tables.metrics)
                    .where(tables.metrics.c.campaign_id == campaign_id)
                    .values(mailbox_id=values["mailbox_id"])
                )
            return await self._one(connection, Campaign, select(campaigns).where(condition))

    # -- metrics ----------------------------------------------------------------------

    async def get_metrics(self, user_id: str, campaign_id: str) -> CampaignMetrics | None:
        metrics = tables.metrics
        async with self._read() as connection:
            return await self._one(
                connection,
                CampaignMetrics,
                select(metrics).where(
                    metrics.c.campaign_id == campaign_id, metrics.c.user_id == user_id
                ),
            )

    async def get_metrics_unscoped(self, campaign_id: str) -> CampaignMetrics | None:
        metrics = tables.metrics
        async with self._read() as connection:
            return await self._one(
                connection,
                CampaignMetrics,
                select(metrics).where(metrics.c.campaign_id == campaign_id),
            )

    async def increment_metrics(
        self, campaign_id: str, deltas: Mapping[str, int], *, at: datetime
    ) -> CampaignMetrics | None:
        unknown = set(deltas) - set(COUNTERS) | ({"total_delivered"} & set(deltas))
        if unknown:
            raise ValueError(f"not incrementable counters: {sorted(unknown)}")
        metrics = tables.metrics
        async with self._write() as connection:
            if not await self._increment(connection, campaign_id, deltas, at):
                return None
            return await self._one(
                connection,
                CampaignMetrics,
                select(metrics).where(metrics.c.campaign_id == campaign_id),
            )

    # -- tracking ---------------------------------------------------------------------

    async def insert_tracking(self, records: Sequence[EmailTracking]) -> int:
        if not records:
            return 0
        rows = [to_row(record) for record in records]
        async with self._write() as connection:
            await connection.execute(tables.tracking.insert(), rows)
        return len(rows)

    async def get_tracking(self, user_id: str, tracking_id: str) -> EmailTracking | None:
        tracking = tables.tracking
        async with self._read() as connection:
            return await self._one(
                connection,
                EmailTracking,
                select(tracking).where(
                    tracking.c._id == tracking_id, tracking.c.user_id == user_id
                ),
            )

    async def list_tracking(
        self,
        user_id: str,
        campaign_id: str,
        *,
        status: TrackingStatus | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[EmailTracking]:
        tracking = tables.tracking
        condition = and_(tracking.c.campaign_id == campaign_id, tracking.c.user_id == user_id)
        if status is not None:
            condition = and_(condition, tracking.c.status == status.value)
        order = (tracking.c.scheduled_at, tracking.c._id)
        async with self._read() as connection:
            return await self._page(
                connection, EmailTracking, tracking, condition, order, offset, limit
            )

    async def count_tracking_by_status(self, user_id: str, campaign_id: str) -> dict[str, int]:
        tracking = tables.tracking
        async with self._read() as connection:
            rows = await connection.execute(
                select(tracking.c.status, func.count())
                .where(tracking.c.campaign_id == campaign_id, tracking.c.user_id == user_id)
                .group_by(tracking.c.status)
            )
            return {str(status): int(count) for status, count in rows}

    async def count_pending(self, user_id: str, campaign_id: str) -> int:
        tracking = tables.tracking
        async with self._read() as connection:
            count = await connection.scalar(
                select(func.count()).where(
                    tracking.c.campaign_id == campaign_id,
                    tracking.c.user_id == user_id,
                    tracking.c.status == TrackingStatus.PENDING,
                )
            )
            return int(count or 0)

    # -- legacy -----------------------------------------------------------------------

    async def import_legacy(
        self, collection: LegacyCollection, documents: Sequence[dict[str, Any]]
    ) -> int:
        rows = [_legacy_row(document) for document in documents]
        if not rows:
            return 0
        async with self._write() as connection:
            await connection.execute(_LEGACY_TABLES[collection].insert(), rows)
        return len(rows)

    async def list_legacy(
        self, collection: LegacyCollection, user_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[LegacyDocument]:
        table = _LEGACY_TABLES[collection]
        order = (table.c.created_at, table.c._id)
        async with self._read() as connection:
            return await self._page(
                connection, LegacyDocument, table, table.c.user_id == user_id, order, offset, limit
            )

    async def iter_legacy(self, collection: LegacyCollection) -> AsyncGenerator[LegacyDocument]:
        table = _LEGACY_TABLES[collection]
        last: str | None = None
        while True:
            statement = select(table).order_by(table.c._id).limit(LEGACY_BATCH)
            if last is not None:
                statement = statement.where(table.c._id > last)
            async with self._read() as connection:
                rows = (await connection.execute(statement)).mappings().all()
            for row in rows:
                yield LegacyDocument.model_validate(dict(row))
            if len(rows) < LEGACY_BATCH:
                return
            last = rows[-1]["_id"]

    async def get_legacy(
        self, collection: LegacyCollection, user_id: str, document_id: str
    ) -> LegacyDocument | None:
        table = _LEGACY_TABLES[collection]
        async with self._read() as connection:
            return await self._one(
                connection,
                LegacyDocument,
                select(table).where(table.c._id == document_id, table.c.user_id == user_id),
            )


def _legacy_row(document: Mapping[str, Any]) -> dict[str, Any]:
    """How an old document is kept: as it was (JSON-safe), with its id, owner and date lifted
    out for indexing."""
    body = to_jsonable_python(dict(document), fallback=str)
    raw_id = body.get("_id")
    if isinstance(raw_id, dict) and "$oid" in raw_id:  # MongoDB extended JSON
        raw_id = raw_id["$oid"]
    document_id = str(raw_id).lower() if is_object_id(raw_id) else new_object_id()
    body["_id"] = document_id
    raw_user = body.get("user_id")
    if isinstance(raw_user, dict) and "$oid" in raw_user:
        raw_user = raw_user["$oid"]
    created_at = document.get("created_at")
    return {
        "_id": document_id,
        "user_id": str(raw_user).lower() if is_object_id(raw_user) else None,
        "created_at": created_at
        if isinstance(created_at, datetime) and created_at.tzinfo
        else None,
        "document": json.loads(json.dumps(body)),
    }
