"""The inbox poller: reads each sending mailbox's inbox and turns what it finds into
reply, automatic-reply and bounce events (classification in `inbound.py`)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Protocol

from mailramp.campaigns.models import StepDelay
from mailramp.campaigns.repository import CampaignRepository
from mailramp.campaigns.sequencing import after_delay
from mailramp.errors import (
    MailboxUnusableError,
    NotFoundError,
    TransientSendError,
)
from mailramp.kit.clock import Clock, truncate, utc_now
from mailramp.kit.ids import new_object_id
from mailramp.kit.marked_ids import WarmupMarker
from mailramp.kit.periodic import Periodic
from mailramp.mailboxes.models import Mailbox
from mailramp.mailboxes.repository import MailboxRepository
from mailramp.mailboxes.service import MailboxService
from mailramp.mailboxes.transport import InboxFactory
from mailramp.suppression.models import Suppression
from mailramp.tracking.events import (
    AUTO_REPLY,
    EVENT_KINDS,
    HARD_BOUNCE,
    MATCH_WINDOW,
    REPLY,
    SOFT_BOUNCE,
    SOFT_BOUNCE_LIMIT,
    SOFT_BOUNCE_WINDOW,
)
from mailramp.tracking.inbound import Inbound, InboundKind, classify_inbound
from mailramp.tracking.inbound.content import read_content
from mailramp.tracking.models import (
    AttachmentInfo,
    ConversationFile,
    ConversationMessage,
    EmailEvent,
    EmailTracking,
    EventType,
    TrackingStatus,
    UnmatchedInbound,
)
from mailramp.tracking.repository import EventChange, ReceivedMessage, TrackingRepository
from mailramp.tracking.service import EventMetrics, unmeasured
from mailramp.tracking.stops import stop_company

log = logging.getLogger(__name__)

ANSWERS = frozenset({InboundKind.REPLY, InboundKind.AUTO_REPLY})
"""What a person (or their autoresponder) sends back; it is never mail sent from the
mailbox itself."""


# What is kept when it matches no email: a bounce or complaint is evidence about an
# address the user may still mail; an automatic reply or a reply is not.
UNMATCHED_KEPT = frozenset(
    {InboundKind.HARD_BOUNCE, InboundKind.SOFT_BOUNCE, InboundKind.COMPLAINT}
)


class InboxStore(TrackingRepository, MailboxRepository, CampaignRepository, Protocol):
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
        warmup: WarmupMarker | None = None,
    ) -> None:
        self._store = store
        self._warmup = warmup
        self._mailboxes = mailboxes
        self._inboxes = inboxes
        self._clock = clock
        self._metrics = metrics or unmeasured()
        self._interval = interval_seconds
        self._stopping = asyncio.Event()
        self._periodic = Periodic(
            "inbox poll", self.poll_once, interval_seconds=min(interval_seconds, 5)
        )

    def stop(self) -> None:
        """Leave `run()` after the current check."""
        self._stopping.set()
        self._periodic.stop()

    async def run(self) -> None:
        """Check inboxes until stopped."""
        await self._periodic.run()

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
        nothing this mailbox's owner sent (a bounce or complaint that matches nothing is
        kept as unmatched). A message the classifier fails on is logged and skipped."""
        try:
            inbound = classify_inbound(raw)
        except Exception:
            log.exception(
                "mailbox %s: an inbox message of %d bytes could not be classified; skipped",
                mailbox.id,
                len(raw),
            )
            return InboundKind.UNRELATED
        if self._warmup is not None and self._warmup.in_thread(
            inbound.message_id, *inbound.references
        ):
            return InboundKind.WARMUP
        if inbound.kind is InboundKind.UNRELATED:
            return inbound.kind
        if inbound.kind in ANSWERS and await self._sent_from_here(mailbox, inbound):
            return InboundKind.UNRELATED
        now = self._clock()
        record = await self._matched(mailbox, inbound, now)
        if record is None:
            if inbound.kind in UNMATCHED_KEPT:
                await self._store.add_unmatched(_unmatched(mailbox, inbound, now))
            return InboundKind.UNRELATED
        kind = EVENT_KINDS[inbound.kind.value]
        status_from: tuple[TrackingStatus, ...] = (TrackingStatus.UNCERTAIN,)
        status_to = TrackingStatus.SENT
        suppress = kind.suppression(record, now=now, detail=_why(inbound))
        if kind.type is EventType.BOUNCE:
            status_from = (TrackingStatus.SENT, TrackingStatus.UNCERTAIN)
            status_to = TrackingStatus.BOUNCED
            if kind is SOFT_BOUNCE:
                suppress = await self._soft_bounce_limit(record, inbound, now)
        event = EmailEvent.about(record, kind.type, now, details=_details(inbound))
        received = (
            _received(mailbox, record, inbound, raw, now) if inbound.kind in ANSWERS else None
        )
        change = EventChange(
            firsts=kind.firsts_for(human=False),
            suppress=suppress,
            status_from=status_from,
            status_to=status_to,
            # A soft bounce ends the sequence once it suppresses the address (too many).
            stops_sequence=kind.stops_sequence or suppress is not None,
            postpone_until=await self._postponed(record, now) if kind is AUTO_REPLY else None,
            received=received,
        )
        await self._store.record_event(event, change)
        self._metrics.count_event(event.type, source="inbox")
        if kind is REPLY:
            await self._stop_company(record, now)
        return inbound.kind

    async def _postponed(self, record: EmailTracking, now: datetime) -> datetime | None:
        """Until when an automatic reply holds the person's next step, if their campaign
        says so (`auto_reply_postpone_days`, sending days in its window)."""
        campaign = await self._store.get_campaign_unscoped(record.campaign_id)
        if campaign is None or not campaign.auto_reply_postpone_days:
            return None
        delay = StepDelay(days=campaign.auto_reply_postpone_days)
        return after_delay(now, delay, campaign.window_for(record.timezone))

    async def _stop_company(self, record: EmailTracking, now: datetime) -> None:
        campaign = await self._store.get_campaign_unscoped(record.campaign_id)
        if campaign is None:
            return
        for _ in await stop_company(self._store, campaign, record, now=now):
            self._metrics.count_event(EventType.STOPPED, source="inbox")

    async def _sent_from_here(self, mailbox: Mailbox, inbound: Inbound) -> bool:
        """Whether an answer is mail this mailbox sent, not one it received: a copy of one
        of mailramp's emails (its Message-ID is one we gave), or anything from the mailbox's
        own address (the owner writing in the thread themselves). Neither is the
        recipient's reply, whatever it quotes."""
        if inbound.recipient == mailbox.email.lower():
            return True
        if inbound.message_id is None:
            return False
        ours = await self._store.find_tracking_by_message_ids([inbound.message_id])
        answers = await self._store.find_answers_by_message_ids([inbound.message_id])
        owners = [record.user_id for record in ours] + [answer.user_id for answer in answers]
        return mailbox.user_id in owners

    async def _matched(
        self, mailbox: Mailbox, inbound: Inbound, now: datetime
    ) -> EmailTracking | None:
        """The email a message is about: the one whose Message-ID it names (or whose thread
        an answer it names was sent in) or, for a bounce, complaint or automatic reply that
        names none of ours, the newest this mailbox sent to the address it is about within
        MATCH_WINDOW."""
        records = await self._store.find_tracking_by_message_ids(inbound.references)
        mine = {r.message_id: r for r in records if r.user_id == mailbox.user_id}
        for reference in inbound.references:
            if reference in mine:
                return mine[reference]
        # An answer sent from the inbox: its reply joins the thread of the email it was in.
        answers = await self._store.find_answers_by_message_ids(inbound.references)
        for answer in answers:
            if answer.user_id == mailbox.user_id:
                return await self._store.get_tracking_unscoped(answer.record_id)
        if inbound.kind is InboundKind.REPLY or not inbound.recipient:
            return None
        return await self._store.find_latest_sent_to(
            mailbox.id, inbound.recipient, since=now - MATCH_WINDOW
        )

    async def _soft_bounce_limit(
        self, record: EmailTracking, inbound: Inbound, now: datetime
    ) -> Suppression | None:
        """The suppression a soft bounce adds when it is the address's SOFT_BOUNCE_LIMITth
        within SOFT_BOUNCE_WINDOW (counted across the owner's campaigns), else None."""
        earlier = await self._store.count_soft_bounces(
            record.user_id, record.recipient_email, since=now - SOFT_BOUNCE_WINDOW
        )
        if earlier + 1 < SOFT_BOUNCE_LIMIT:
            return None
        days = SOFT_BOUNCE_WINDOW.days
        detail = f"{earlier + 1} soft bounces in {days} days (the last: {_why(inbound)})"
        return HARD_BOUNCE.suppression(record, now=now, detail=detail)


def _why(inbound: Inbound) -> str:
    """What a suppression says about its cause."""
    if inbound.kind is InboundKind.COMPLAINT:
        return f"complaint ({inbound.feedback_type or 'abuse'})"
    reason = f", {inbound.reason}" if inbound.reason else ""
    return f"delivery status {inbound.status}{reason}"


def _details(inbound: Inbound) -> dict[str, Any]:
    """The event's details: who sent the message, and what it says."""
    details: dict[str, Any] = {
        "from": inbound.sender,
        "subject": inbound.subject,
        "message_id": inbound.message_id,
    }
    failure = inbound.failures[0] if inbound.failures else None
    if failure is not None:
        details |= {
            "status": failure.status,
            "reason": failure.reason.value,
            "reply_code": failure.reply_code,
            "diagnostic": failure.diagnostic,
            "recipient": failure.recipient,
        }
    if inbound.kind in (InboundKind.HARD_BOUNCE, InboundKind.SOFT_BOUNCE):
        details["bounce"] = "hard" if inbound.kind is InboundKind.HARD_BOUNCE else "soft"
    if inbound.kind is InboundKind.COMPLAINT:
        details |= {"feedback_type": inbound.feedback_type, "recipient": inbound.recipient}
    if inbound.kind in (InboundKind.REPLY, InboundKind.AUTO_REPLY):
        details["text"] = inbound.text
    return {key: value for key, value in details.items() if value is not None}


def _unmatched(mailbox: Mailbox, inbound: Inbound, now: datetime) -> UnmatchedInbound:
    details = _details(inbound)
    if len(inbound.failures) > 1:
        details["failures"] = [
            {"recipient": f.recipient, "status": f.status, "reason": f.reason.value}
            for f in inbound.failures
        ]
    return UnmatchedInbound(
        id=new_object_id(),
        user_id=mailbox.user_id,
        mailbox_id=mailbox.id,
        kind=inbound.kind.value,
        recipient=inbound.recipient,
        status=inbound.status,
        reason=inbound.reason.value if inbound.reason else None,
        sender=inbound.sender,
        subject=inbound.subject,
        message_id=inbound.message_id,
        details=details,
        received_at=now,
    )


def _received(
    mailbox: Mailbox, record: EmailTracking, inbound: Inbound, raw: bytes, now: datetime
) -> ReceivedMessage:
    """A reply or automatic reply as the inbox keeps it, with its kept attachments."""
    content = read_content(raw)
    message_id = new_object_id()
    files: list[ConversationFile] = []
    attachments: list[AttachmentInfo] = []
    for attachment in content.attachments:
        file_id = new_object_id()
        attachments.append(
            AttachmentInfo(
                id=file_id,
                filename=attachment.filename,
                content_type=attachment.content_type,
                size=attachment.size,
                kept=attachment.data is not None,
            )
        )
        if attachment.data is not None:
            files.append(
                ConversationFile(
                    id=file_id, message_id=message_id, user_id=record.user_id, data=attachment.data
                )
            )
    message = ConversationMessage(
        id=message_id,
        user_id=record.user_id,
        mailbox_id=mailbox.id,
        campaign_id=record.campaign_id,
        record_id=record.id,
        recipient_email=record.recipient_email,
        direction="in",
        kind=inbound.kind.value,
        message_id=content.message_id,
        references=content.in_reply_to,
        sender=content.sender,
        to=content.to,
        subject=content.subject,
        sent_at=truncate(content.sent_at) if content.sent_at else None,
        received_at=now,
        text=content.text,
        quoted=content.quoted,
        html=content.html,
        attachments=attachments,
        size=content.size,
        problem=content.problem,
    )
    return ReceivedMessage(message, files)
