"""The people of a campaign on SQL: `campaign_recipients`, the firsts that make the counters
count people rather than emails, and the end of a person's sequence."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailramp.errors import ConflictError
from mailramp.kit.ids import new_object_id
from mailramp.storage.rows import to_row
from mailramp.storage.sql import tables
from mailramp.storage.sql.event_log import SqlEventLog
from mailramp.tracking.events import ChangedEmail
from mailramp.tracking.models import UNSENT_STATUSES, TrackingStatus
from mailramp.tracking.repository import LeadStatusMove, ReceivedMessage

T = tables.tracking
P = tables.recipients
CHANGED = (T.c._id, T.c.campaign_id, T.c.user_id, T.c.recipient_email)
"""What an UPDATE of emails returns for the events of the change (tracking/events.py)."""


class SqlPeople(SqlEventLog):
    """What the queue and the event log do to people, inside their unit of work."""

    async def _add_people(
        self,
        connection: AsyncConnection,
        campaign_id: str,
        user_id: str,
        emails: Collection[str],
        at: datetime,
    ) -> None:
        """A `campaign_recipients` row for each address that has none."""
        if not emails:
            return
        rows = [
            {
                "_id": new_object_id(),
                "campaign_id": campaign_id,
                "user_id": user_id,
                "recipient_email": email,
                "created_at": at,
                "updated_at": at,
            }
            for email in sorted(emails)
        ]
        await connection.execute(
            self._insert(P).on_conflict_do_nothing(
                index_elements=["campaign_id", "recipient_email"]
            ),
            rows,
        )

    async def _first_for_people(
        self,
        connection: AsyncConnection,
        campaign_id: str,
        user_id: str,
        emails: Collection[str],
        field: str,
        at: datetime,
        *,
        add_missing: bool = True,
    ) -> int:
        """Set `field` on these people where it is not set yet; how many it was set on (the
        people a counter gains). A person's row is made first if it is missing, unless
        `add_missing` is off: the send path, where every email's person was stored with it
        (import, `insert_tracking`, an added step, the migration), skips that write."""
        if add_missing:
            await self._add_people(connection, campaign_id, user_id, emails, at)
        changed = await connection.execute(
            update(P)
            .where(
                P.c.campaign_id == campaign_id,
                P.c.recipient_email.in_(sorted(emails)),
                P.c[field].is_(None),
            )
            .values({field: at, "updated_at": at})
        )
        return int(changed.rowcount)

    async def _end_sequence(
        self, connection: AsyncConnection, campaign_id: str, email: str, at: datetime
    ) -> list[ChangedEmail]:
        """Stop every email of this person not handed to a worker yet (a claimed one is no
        longer `pending`, so it is not stopped here and a stop never races a send); the
        emails stopped."""
        stopped = await connection.execute(
            update(T)
            .where(
                T.c.campaign_id == campaign_id,
                T.c.recipient_email == email,
                T.c.status.in_([status.value for status in UNSENT_STATUSES]),
            )
            .values(
                status=TrackingStatus.STOPPED.value,
                lease_owner=None,
                lease_expires_at=None,
                updated_at=at,
            )
            .returning(*CHANGED)
        )
        emails = [ChangedEmail(*row) for row in stopped.all()]
        await connection.execute(
            update(P)
            .where(
                and_(P.c.campaign_id == campaign_id, P.c.recipient_email == email),
                P.c.stopped_at.is_(None),
            )
            .values(stopped_at=at, updated_at=at)
        )
        return emails

    async def _email_of(self, connection: AsyncConnection, record_id: str) -> str | None:
        return (
            await connection.execute(select(T.c.recipient_email).where(T.c._id == record_id))
        ).scalar()

    async def _postpone(
        self, connection: AsyncConnection, campaign_id: str, email: str, until: datetime
    ) -> None:
        """None of this person's emails not sent yet goes before `until`."""
        await connection.execute(
            update(T)
            .where(
                T.c.campaign_id == campaign_id,
                T.c.recipient_email == email,
                T.c.status.in_([status.value for status in UNSENT_STATUSES]),
                or_(T.c.scheduled_at.is_(None), T.c.scheduled_at < until),
            )
            .values(scheduled_at=until, updated_at=until)
        )

    async def _move_lead_status(
        self,
        connection: AsyncConnection,
        campaign_id: str,
        email: str,
        move: LeadStatusMove,
        at: datetime,
    ) -> None:
        """Set the person's lead status if it is still `move.was` (inside a change's unit of
        work); ConflictError, undoing the whole change, if it is not."""
        still = P.c.lead_status.is_(None) if move.was is None else P.c.lead_status == move.was
        moved = await connection.execute(
            update(P)
            .where(P.c.campaign_id == campaign_id, P.c.recipient_email == email, still)
            .values(lead_status=move.to, lead_status_at=at, updated_at=at)
        )
        if not moved.rowcount:
            raise ConflictError(
                f"the lead status of {email} changed meanwhile; look again", field="status"
            )

    async def _keep_received(self, connection: AsyncConnection, received: ReceivedMessage) -> None:
        """Keep a reply for the inbox, with its files, unless it was kept before."""
        kept = await connection.execute(
            self._insert(tables.conversation_messages).on_conflict_do_nothing(
                index_elements=["mailbox_id", "message_id"]
            ),
            [to_row(received.message)],
        )
        if kept.rowcount and received.files:
            await connection.execute(
                tables.conversation_files.insert(), [to_row(file) for file in received.files]
            )
