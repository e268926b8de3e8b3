"""The inbox poller: reads each sending mailbox's inbox and turns what it finds into
reply, automatic-reply and bounce events (classification in `inbound.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from mailramp.errors import (
    DatabaseUnavailableError,
    MailboxUnusableError,
    NotFoundError,
    TransientSendError,
)
from mailramp.kit.clock import Clock, utc_now
from mailramp.mailboxes.models import Mailbox
from mailramp.mailboxes.repository import MailboxRepository
from mailramp.mailboxes.service import MailboxService
from mailramp.mailboxes.transport import InboxFactory
from mailramp.tracking.events import EVENT_KINDS, HARD_BOUNCE
from mailramp.tracking.inbound import Inbound, InboundKind, classify_inbound
from mailramp.tracking.models import EmailEvent, EmailTracking, EventType, TrackingStatus
from mailramp.tracking.repository import EventChange, TrackingRepository
from mailramp.tracking.service import EventMetrics, unmeasured

log = logging.getLogger(__name__)


class InboxStore(TrackingRepository, MailboxRepository, Protocol):
    """What the inbox poller reads and writes."""


class InboxPoller:
    """Checks every inbox at most once per `interval_seconds`, across all workers."""

    def __init__(
        self,
        store: InboxStore,
        mailboxes: MailboxService,
        inboxes: InboxFactory,
        *,
        clock: Clock = utc_now,
        interval_seconds: float = 60,
        metrics: EventMetrics | None = None,
    ) -> None:
        self._store = store
        self._mailboxes = mailboxes
        self._inboxes = inboxes
        self._clock = clock
        self._metrics = metrics or unmeasured()
        self._interval = interval_seconds
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Leave `run()` after the current check."""
        self._stopping.set()

    async def run(self) -> None:
        """Check inboxes until stopped."""
        database_lost = False
        while not self._stopping.is_set():
            try:
                await self.poll_once()
            except DatabaseUnavailableError as error:
                # One line when it goes and one when it is back, not a traceback a poll.
                if not database_lost:
                    log.warning("inbox poll: %s; waiting for it", error.message)
                database_lost = True
            except Exception:
                log.exception("inbox poll failed; retrying")
            else:
                if database_lost:
                    log.warning("inbox poll: the database answers again")
                database_lost = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=min(self._interval, 5))

    async def poll_once(self) -> dict[str, int]:
        """Check the inboxes that are due; returns how many messages of each kind it saw."""
        seen: dict[str, int] = {}
        for mailbox in await self._store.list_inbox_mailboxes():
            if self._stopping.is_set():
                break
            if not await self._store.claim_inbox_check(
                mailbox.id, now=self._clock(), interval=self._interval
            ):
                continue
            try:
                kinds = await self._check(mailbox)
            except NotFoundError:
                # Unlinked by its owner while being read: nothing of it is kept, and the
                # other mailboxes of this pass are still read.
                log.info("mailbox %s was unlinked during its inbox check", mailbox.id)
                continue
            for kind in kinds:
                seen[kind] = seen.get(kind, 0) + 1
        return seen

    async def _check(self, mailbox: Mailbox) -> list[InboundKind]:
        try:
            credentials = await self._mailboxes.credentials(mailbox.user_id, mailbox.id)
            inbox = self._inboxes(mailbox, credentials)
            batch = await inbox.fetch_new(
                uid_validity=mailbox.imap_uid_validity, last_uid=mailbox.imap_last_uid
            )
        except MailboxUnusableError as error:
            log.warning("inbox of mailbox %s cannot be read: %s", mailbox.id, error.message)
            await self._mailboxes.set_status(
                mailbox.user_id, mailbox.id, "error", reason=f"inbox: {error.message}"
            )
            return []
        except TransientSendError as error:
            log.warning("inbox of mailbox %s: %s (will retry)", mailbox.id, error.message)
            return []
        kinds = []
        last = mailbox.imap_last_uid if batch.uid_validity == mailbox.imap_uid_validity else 0
        for uid, raw in batch.messages:
            kinds.append(await self.process(mailbox, raw))
            last = max(last or 0, uid)
        await self._store.save_inbox_position(
            mailbox.id, uid_validity=batch.uid_validity, last_uid=last or 0
        )
        return kinds

    async def process(self, mailbox: Mailbox, raw: bytes) -> InboundKind:
        """Classify one inbox message and record what it means; UNRELATED if it refers to
        nothing this mailbox's owner sent."""
        inbound = classify_inbound(raw)
        if inbound.kind is InboundKind.UNRELATED:
            return inbound.kind
        record = await self._referenced(mailbox, inbound)
        if record is None:
            return InboundKind.UNRELATED
        now = self._clock()
        details = {
            "from": inbound.sender,
            "subject": inbound.subject,
            "message_id": inbound.message_id,
        }
        kind = EVENT_KINDS[inbound.kind.value]
        status_from: tuple[TrackingStatus, ...] = (TrackingStatus.UNCERTAIN,)
        status_to = TrackingStatus.SENT
        if inbound.kind is InboundKind.DELAYED:
            details |= {"status": inbound.status}
        if kind.type is EventType.BOUNCE:
            hard = kind is HARD_BOUNCE
            details |= {"status": inbound.status, "bounce": "hard" if hard else "soft"}
            status_from = (TrackingStatus.SENT, TrackingStatus.UNCERTAIN)
            status_to = TrackingStatus.BOUNCED
        present = {key: value for key, value in details.items() if value is not None}
        event = EmailEvent.about(record, kind.type, now, details=present)
        change = EventChange(
            firsts=kind.firsts_for(human=False),
            suppress=kind.suppression(record, now=now, detail=f"delivery status {inbound.status}"),
            status_from=status_from,
            status_to=status_to,
        )
        await self._store.record_event(event, change)
        self._metrics.count_event(event.type, source="inbox")
        return inbound.kind

    async def _referenced(self, mailbox: Mailbox, inbound: Inbound) -> EmailTracking | None:
        records = await self._store.find_tracking_by_message_ids(inbound.references)
        mine = {r.message_id: r for r in records if r.user_id == mailbox.user_id}
        for reference in inbound.references:
            if reference in mine:
                return mine[reference]
        return None
