"""The warm-up pool at work (deliverability/warmup.py has its rules): every pass, each
opted-in mailbox plans what is left of today's warm-up emails, the due ones leave through
the mailbox's own provider, and each receiving mailbox looks for what was sent to it in
every folder — marking it read and important, moving it out of spam, and answering a share
in the same thread. Where each was found is the sender's inbox placement.

Warm-up emails carry no link, no pixel and no unsubscribe line; they count against the
sending mailbox's daily limit; they are never a campaign's email, reply or bounce (the
inbox poller recognises them by their Message-ID, kit/marked_ids.py).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Protocol

from mailramp.deliverability import content, warmup
from mailramp.deliverability.models import Placement, WarmupEmail, WarmupStatus
from mailramp.deliverability.repository import DeliverabilityRepository, WarmupRepository
from mailramp.errors import MailboxUnusableError, ProviderError, TransientSendError
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.ids import new_object_id
from mailramp.kit.marked_ids import WarmupMarker
from mailramp.mailboxes.models import Mailbox
from mailramp.mailboxes.ramp import day_key, limit_today
from mailramp.mailboxes.repository import MailboxRepository
from mailramp.mailboxes.service import MailboxService
from mailramp.mailboxes.transport import InboxFactory, ProviderFactory, WarmupInbox

log = logging.getLogger(__name__)

MAX_STEP = 2
"""A conversation is an opening, a reply and at most one reply to that."""
MAX_ATTEMPTS = 3
"""A warm-up email the provider keeps refusing for a passing reason is given up after this."""
RETRY_AFTER = timedelta(minutes=10)
LOOK_FOR = timedelta(days=3)
"""How long the receiving side looks for a warm-up email; one not found by then never
arrived (or was deleted), and is not in the sender's placement figures."""


class PoolStore(WarmupRepository, DeliverabilityRepository, MailboxRepository, Protocol):
    """What the warm-up pool reads and writes."""


@dataclass
class PoolPass:
    """What one pass did."""

    planned: int = 0
    sent: int = 0
    failed: int = 0
    found: dict[str, int] = field(default_factory=dict)
    replies_planned: int = 0


class WarmupPool:
    """Plans, sends and tends the installation's warm-up emails."""

    def __init__(
        self,
        store: PoolStore,
        mailboxes: MailboxService,
        providers: ProviderFactory,
        inboxes: InboxFactory,
        marker: WarmupMarker,
        *,
        clock: Clock = utc_now,
        batch: int = 100,
    ) -> None:
        self._store = store
        self._mailboxes = mailboxes
        self._providers = providers
        self._inboxes = inboxes
        self._marker = marker
        self._clock = clock
        self._batch = batch

    async def run_once(self) -> PoolPass:
        """One pass: plan, send what is due, then look for what was sent."""
        done = PoolPass()
        pool = await self._store.warmup_pool()
        done.planned = await self._plan(pool)
        await self._send_due(done)
        await self._tend(pool, done)
        return done

    # -- planning -----------------------------------------------------------------------

    async def plan(self) -> int:
        """Plan what is left of today's warm-up openings of every pool member."""
        return await self._plan(await self._store.warmup_pool())

    async def _plan(self, pool: Sequence[Mailbox]) -> int:
        now = self._clock()
        day_start = datetime.fromisoformat(day_key(now)).replace(tzinfo=now.tzinfo)
        planned: list[WarmupEmail] = []
        for sender in pool:
            days = await self._store.mailbox_days(sender.id)
            volume = min(warmup.volume_today(sender, days, now), limit_today(sender, days, now))
            opened = await self._store.warmup_openings_between(
                sender.id, day_start, day_start + timedelta(days=1)
            )
            if volume <= opened:
                continue
            seed = f"{sender.id}:{day_key(now)}"
            rng = random.Random(f"{seed}:{opened}")  # noqa: S311 (spreading, not secrecy)
            times = warmup.send_times(volume - opened, now, sender.warmup_timezone, rng)
            partners = warmup.partners(sender, pool, opened + len(times), seed)[opened:]
            for moment, partner in zip(times, partners, strict=False):
                planned.append(self._opening(sender, partner, moment, now))
        await self._store.insert_warmup_emails(planned)
        return len(planned)

    def _opening(
        self, sender: Mailbox, partner: Mailbox, moment: datetime, now: datetime
    ) -> WarmupEmail:
        email_id = new_object_id()
        text = content.opening(email_id)
        return WarmupEmail.model_validate(
            {
                "_id": email_id,
                "user_id": sender.user_id,
                "mailbox_id": sender.id,
                "to_mailbox_id": partner.id,
                "to_user_id": partner.user_id,
                "thread_id": email_id,
                "step": 0,
                "message_id": self._marker.message_id(sender.domain),
                "subject": text.subject,
                "body": text.body,
                "planned_at": moment,
                "created_at": now,
                "updated_at": now,
            }
        )

    # -- sending ------------------------------------------------------------------------

    async def _send_due(self, done: PoolPass) -> None:
        now = self._clock()
        for email in await self._store.claim_warmup_emails(now, limit=self._batch):
            status, error = await self._send(email, now)
            await self._store.finish_warmup_email(email.id, status=status, at=now, error=error)
            if status is WarmupStatus.SENT:
                done.sent += 1
            elif status is WarmupStatus.FAILED:
                done.failed += 1

    async def _send(self, email: WarmupEmail, now: datetime) -> tuple[WarmupStatus, str | None]:
        sender = await self._store.get_mailbox_unscoped(email.mailbox_id)
        recipient = await self._store.get_mailbox_unscoped(email.to_mailbox_id)
        if sender is None or recipient is None or not sender.can_connect:
            return WarmupStatus.FAILED, "a mailbox of the pair can no longer take part"
        if not sender.warmup_enabled:
            return WarmupStatus.FAILED, "the sending mailbox left the warm-up pool"
        credentials = await self._mailboxes.credentials(sender.user_id, sender.id)
        try:
            provider = self._providers(sender, credentials)
        except MailboxUnusableError as error:
            return WarmupStatus.FAILED, error.message
        try:
            await provider.send(
                warmup_message(email, sender, recipient, now),
                sender=sender.email,
                recipient=recipient.email,
            )
        except TransientSendError as error:
            if email.attempts >= MAX_ATTEMPTS:
                return WarmupStatus.FAILED, error.message
            await self._store.update_warmup_email(email.id, {"planned_at": now + RETRY_AFTER})
            return WarmupStatus.PLANNED, error.message
        except ProviderError as error:
            return WarmupStatus.FAILED, error.message
        finally:
            await provider.close()
        return WarmupStatus.SENT, None

    # -- the receiving side -----------------------------------------------------------

    async def _tend(self, pool: Sequence[Mailbox], done: PoolPass) -> None:
        for receiver in pool:
            wanted = await self._store.warmup_emails_to_find(
                receiver.id, sent_since=self._clock() - LOOK_FOR
            )
            if not wanted or not receiver.can_connect:
                continue
            credentials = await self._mailboxes.credentials(receiver.user_id, receiver.id)
            try:
                inbox = self._inboxes(receiver, credentials)
            except MailboxUnusableError as error:
                log.warning("warm-up: cannot read %s: %s", receiver.id, error.message)
                continue
            if not isinstance(inbox, WarmupInbox):
                log.warning("warm-up: %s mailboxes cannot be tended yet", receiver.provider)
                continue
            try:
                tended = await inbox.tend_warmup([email.message_id for email in wanted])
            except ProviderError as error:
                log.warning("warm-up: reading %s failed: %s", receiver.id, error.message)
                continue
            by_id = {email.message_id: email for email in wanted}
            for found in tended:
                email = by_id.get(found.message_id)
                if email is not None:
                    await self._found(email, receiver, found.placement, found.rescued, done)

    async def _found(
        self,
        email: WarmupEmail,
        receiver: Mailbox,
        placement: str,
        rescued: bool,
        done: PoolPass,
    ) -> None:
        now = self._clock()
        answer = email.step < MAX_STEP and warmup.answers(email.id, receiver.warmup_reply_percent)
        await self._store.update_warmup_email(
            email.id,
            {
                "found_at": now,
                "placement": Placement(placement),
                "rescued_at": now if rescued else None,
                "read_at": now,
                "reply_planned": answer,
                "updated_at": now,
            },
        )
        done.found[placement] = done.found.get(placement, 0) + 1
        if answer:
            await self._store.insert_warmup_emails([self._reply(email, receiver, now)])
            done.replies_planned += 1

    def _reply(self, email: WarmupEmail, receiver: Mailbox, now: datetime) -> WarmupEmail:
        reply_id = new_object_id()
        text = content.reply(email.thread_id, reply_id, email.subject)
        references = " ".join(filter(None, [email.references, email.message_id]))
        return WarmupEmail.model_validate(
            {
                "_id": reply_id,
                "user_id": receiver.user_id,
                "mailbox_id": receiver.id,
                "to_mailbox_id": email.mailbox_id,
                "to_user_id": email.user_id,
                "thread_id": email.thread_id,
                "step": email.step + 1,
                "message_id": self._marker.message_id(receiver.domain),
                "in_reply_to": email.message_id,
                "references": references,
                "subject": text.subject,
                "body": text.body,
                "planned_at": warmup.reply_time(now, receiver.warmup_timezone, reply_id),
                "created_at": now,
                "updated_at": now,
            }
        )


def warmup_message(
    email: WarmupEmail, sender: Mailbox, recipient: Mailbox, now: datetime
) -> EmailMessage:
    """A warm-up email as it leaves: plain text, in its thread, nothing tracked."""
    message = EmailMessage()
    message["From"] = formataddr((sender.display_name or "", sender.email))
    message["To"] = formataddr((recipient.display_name or "", recipient.email))
    message["Subject"] = email.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = email.message_id
    if email.in_reply_to:
        message["In-Reply-To"] = email.in_reply_to
        message["References"] = email.references or email.in_reply_to
    message.set_content(email.body)
    return message
