"""People's lead statuses and the users' own labels on SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailramp.conversations.models import LeadLabel
from mailramp.conversations.repository import ThreadQuery, ThreadSummary
from mailramp.kit.types import Page
from mailramp.storage.rows import check_page, to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.base import SqlBase
from mailramp.tracking.models import CampaignRecipient, ConversationFile, ConversationMessage

P = tables.recipients
L = tables.lead_labels
C = tables.conversation_messages
F = tables.conversation_files
K = tables.campaigns


class SqlConversations(SqlBase):
    async def get_person(
        self, user_id: str, campaign_id: str, recipient_email: str
    ) -> CampaignRecipient | None:
        query = select(P).where(
            P.c.user_id == user_id,
            P.c.campaign_id == campaign_id,
            P.c.recipient_email == recipient_email,
        )
        return await self._read_one(CampaignRecipient, query)

    async def count_lead_statuses(self, user_id: str, campaign_id: str) -> dict[str, int]:
        query = (
            select(P.c.lead_status, func.count())
            .where(
                P.c.user_id == user_id,
                P.c.campaign_id == campaign_id,
                P.c.lead_status.is_not(None),
            )
            .group_by(P.c.lead_status)
        )
        async with self._read() as connection:
            return {
                str(status): int(count) for status, count in (await connection.execute(query)).all()
            }

    async def count_lead_status_holders(self, user_id: str, status: str) -> int:
        query = select(func.count()).where(P.c.user_id == user_id, P.c.lead_status == status)
        async with self._read() as connection:
            return int((await connection.execute(query)).scalar_one())

    async def add_lead_label(self, label: LeadLabel) -> None:
        row = to_row(label)
        async with self._write({"name": label.name}) as connection:
            await connection.execute(insert(L).values(row))

    async def list_lead_labels(self, user_id: str) -> list[LeadLabel]:
        query = select(L).where(L.c.user_id == user_id).order_by(L.c.key)
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings()
            return [LeadLabel.model_validate(dict(row)) for row in rows]

    async def delete_lead_label(self, user_id: str, key: str) -> bool:
        async with self._write() as connection:
            gone = await connection.execute(delete(L).where(L.c.user_id == user_id, L.c.key == key))
        return bool(gone.rowcount)

    # -- the inbox ------------------------------------------------------------------

    async def list_threads(self, user_id: str, query: ThreadQuery) -> Page[ThreadSummary]:
        check_page(query.offset, query.limit)
        mine = [C.c.user_id == user_id]
        if not query.automatic:
            mine.append(C.c.kind != "auto_reply")
        if query.mailbox_id is not None:
            mine.append(C.c.mailbox_id == query.mailbox_id)
        unread = func.sum(case((and_(C.c.direction == "in", C.c.read_at.is_(None)), 1), else_=0))
        last_at = func.max(C.c.received_at)
        threads = (
            select(
                C.c.campaign_id,
                C.c.recipient_email,
                last_at.label("last_at"),
                func.count().label("messages"),
                unread.label("unread"),
            )
            .where(*mine)
            .group_by(C.c.campaign_id, C.c.recipient_email)
        )
        if query.unread:
            threads = threads.having(unread > 0)
        grouped = threads.subquery()
        listed = (
            select(
                grouped,
                K.c.campaign_name,
                P.c.lead_status,
            )
            .join(K, K.c.campaign_id == grouped.c.campaign_id)
            .outerjoin(
                P,
                and_(
                    P.c.campaign_id == grouped.c.campaign_id,
                    P.c.recipient_email == grouped.c.recipient_email,
                ),
            )
        )
        if query.lead_status is not None:
            listed = listed.where(P.c.lead_status == query.lead_status)
        if query.search:
            text = query.search.lower()
            said = (
                select(C.c._id)
                .where(
                    *mine,
                    C.c.campaign_id == grouped.c.campaign_id,
                    C.c.recipient_email == grouped.c.recipient_email,
                    or_(
                        func.lower(C.c.sender).contains(text, autoescape=True),
                        func.lower(C.c.subject).contains(text, autoescape=True),
                        func.lower(C.c.text).contains(text, autoescape=True),
                    ),
                )
                .exists()
            )
            listed = listed.where(
                or_(
                    grouped.c.recipient_email.contains(text, autoescape=True),
                    func.lower(K.c.campaign_name).contains(text, autoescape=True),
                    said,
                )
            )
        counted = select(func.count()).select_from(listed.subquery())
        page = listed.order_by(grouped.c.last_at.desc()).offset(query.offset).limit(query.limit)
        async with self._read() as connection:
            total = int((await connection.execute(counted)).scalar_one())
            rows = (await connection.execute(page)).mappings().all()
            latest = await self._latest(connection, user_id, query, rows)
        items = [
            ThreadSummary(
                campaign_id=row["campaign_id"],
                campaign_name=row["campaign_name"],
                recipient_email=row["recipient_email"],
                lead_status=row["lead_status"],
                last_at=latest[(row["campaign_id"], row["recipient_email"])].received_at,
                messages=int(row["messages"]),
                unread=int(row["unread"] or 0),
                latest=latest[(row["campaign_id"], row["recipient_email"])],
            )
            for row in rows
        ]
        return Page[ThreadSummary](items=items, total=total, offset=query.offset, limit=query.limit)

    async def _latest(
        self, connection: AsyncConnection, user_id: str, query: ThreadQuery, rows: Any
    ) -> dict[tuple[str, str], ConversationMessage]:
        """The newest message shown of each listed thread."""
        pairs = [(row["campaign_id"], row["recipient_email"]) for row in rows]
        if not pairs:
            return {}
        wanted = select(C).where(
            C.c.user_id == user_id, tuple_(C.c.campaign_id, C.c.recipient_email).in_(pairs)
        )
        if not query.automatic:
            wanted = wanted.where(C.c.kind != "auto_reply")
        latest: dict[tuple[str, str], ConversationMessage] = {}
        for row in (await connection.execute(wanted.order_by(C.c.received_at))).mappings():
            message = ConversationMessage.model_validate(dict(row))
            latest[(message.campaign_id, message.recipient_email)] = message
        return latest

    async def list_conversation(
        self, user_id: str, campaign_id: str, recipient_email: str
    ) -> list[ConversationMessage]:
        query = (
            select(C)
            .where(
                C.c.user_id == user_id,
                C.c.campaign_id == campaign_id,
                C.c.recipient_email == recipient_email,
            )
            .order_by(C.c.received_at, C.c._id)
        )
        async with self._read() as connection:
            rows = (await connection.execute(query)).mappings()
            return [ConversationMessage.model_validate(dict(row)) for row in rows]

    async def get_conversation_message(
        self, user_id: str, message_id: str
    ) -> ConversationMessage | None:
        query = select(C).where(C.c._id == message_id, C.c.user_id == user_id)
        return await self._read_one(ConversationMessage, query)

    async def get_conversation_file(
        self, user_id: str, file_id: str
    ) -> tuple[ConversationMessage, ConversationFile] | None:
        query = select(F).where(F.c._id == file_id, F.c.user_id == user_id)
        async with self._read() as connection:
            file = await self._one(connection, ConversationFile, query)
            if file is None:
                return None
            message = await self._one(
                connection, ConversationMessage, select(C).where(C.c._id == file.message_id)
            )
        return None if message is None else (message, file)

    async def mark_conversation_read(
        self, user_id: str, campaign_id: str, recipient_email: str, *, read_at: datetime | None
    ) -> int:
        async with self._write() as connection:
            changed = await connection.execute(
                update(C)
                .where(
                    C.c.user_id == user_id,
                    C.c.campaign_id == campaign_id,
                    C.c.recipient_email == recipient_email,
                    C.c.direction == "in",
                    C.c.read_at.is_(None) if read_at is not None else C.c.read_at.is_not(None),
                )
                .values(read_at=read_at)
            )
        return int(changed.rowcount)

    async def add_conversation_message(self, message: ConversationMessage) -> bool:
        async with self._write() as connection:
            added = await connection.execute(
                self._insert(C).on_conflict_do_nothing(index_elements=["_id"]), [to_row(message)]
            )
        return bool(added.rowcount)

    async def finish_answer(
        self, answer_id: str, *, status: str, error: str | None, message_id: str | None
    ) -> bool:
        async with self._write() as connection:
            finished = await connection.execute(
                update(C)
                .where(C.c._id == answer_id, C.c.status == "sending")
                .values(status=status, error=error, message_id=message_id)
            )
        return bool(finished.rowcount)
