"""`mailramp migrate-legacy`: `warm_up_emails_table` documents → `warmup_emails` (schema
migration note 1; the legacy collection stays readable and untouched).

A legacy warm-up email fits when both its ends are mailboxes linked here: the sender by
`mailbox_id` or its address, the recipient by `to_mailbox_id` or its address (any owner's,
as the pool is the installation's). It keeps its `_id` (so a second run finds it and
changes nothing), its Message-ID, thread, send time and — when the document says — where
it landed, whether it was moved out of spam, read and answered: the sender's history and
health then include its warm-up from before. Emails never sent are not carried over (the
pool plans its own); every document skipped is reported with its `_id` and the reason.

The field mapping (the first legacy name found wins) is in docs/legacy-migration.md and in
the name tuples below.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from mailramp.deliverability.models import Placement, WarmupEmail, WarmupStatus
from mailramp.deliverability.repository import WarmupRepository
from mailramp.kit.ids import is_object_id
from mailramp.legacy.migrate import (
    MigrationReport,
    NotMigrated,
    Skipped,
    first_of,
    id_text,
    moment,
)
from mailramp.mailboxes.models import Mailbox
from mailramp.mailboxes.repository import MailboxRepository

SENDER_IDS = ("mailbox_id", "from_mailbox_id", "sender_mailbox_id")
SENDERS = ("from_email", "sender_email", "sender", "from", "mailbox_email")
RECIPIENT_IDS = ("to_mailbox_id", "recipient_mailbox_id", "receiver_mailbox_id")
RECIPIENTS = ("to_email", "recipient_email", "receiver_email", "recipient", "to")
SUBJECTS = ("subject", "email_subject")
BODIES = ("body", "message", "content", "text", "email_body")
MESSAGE_IDS = ("message_id", "messageId", "internet_message_id", "Message-ID")
PARENTS = ("in_reply_to", "inReplyTo", "parent_message_id")
THREADS = ("thread_id", "threadId", "conversation_id")
SENT_TIMES = ("sent_at", "sent_time", "sent_date", "timestamp", "date")
PLACEMENTS = ("placement", "landed_in", "folder", "location", "inbox_placement", "label")
SPAM_FLAGS = ("is_spam", "in_spam", "landed_in_spam", "spam")
FOUND_TIMES = ("found_at", "checked_at", "received_at")
RESCUE_TIMES = ("rescued_at", "moved_at")
RESCUE_FLAGS = ("rescued", "moved_to_inbox", "moved")
READ_TIMES = ("read_at", "opened_at")
READ_FLAGS = ("read", "opened", "is_read")
REPLY_FLAGS = ("replied", "reply_sent")
ERRORS = ("error", "last_error", "failure_reason")

SENT_STATUSES = frozenset(
    {"sent", "delivered", "opened", "read", "replied", "received", "landed", "inbox", "spam"}
)
FAILED_STATUSES = frozenset({"failed", "bounced", "error", "rejected"})
UNSENT_STATUSES = frozenset({"pending", "scheduled", "queued", "planned", "draft"})
SPAM_PLACES = frozenset({"spam", "junk", "junk email", "junkemail", "bulk", "bulk mail"})
INBOX_PLACES = frozenset({"inbox", "primary"})


class WarmupMigrationStore(WarmupRepository, MailboxRepository, Protocol):
    """What the migration of legacy warm-up emails reads and writes."""


def _flag(document: Mapping[str, Any], names: tuple[str, ...]) -> bool | None:
    value = first_of(document, names)
    return value if isinstance(value, bool) else None


def _when(document: Mapping[str, Any], names: tuple[str, ...]) -> datetime | None:
    value = first_of(document, names)
    return None if value is None else moment(value, names[0])


def _placement(document: Mapping[str, Any]) -> Placement | None:
    place = first_of(document, PLACEMENTS)
    if isinstance(place, str):
        word = place.strip().lower()
        if word in SPAM_PLACES:
            return Placement.SPAM
        return Placement.INBOX if word in INBOX_PLACES else Placement.OTHER
    spam = _flag(document, SPAM_FLAGS)
    if spam is None:
        return None
    return Placement.SPAM if spam else Placement.INBOX


def _message_id(value: Any, legacy_id: str, sender: Mailbox) -> str:
    if isinstance(value, str) and value.strip():
        text = value.strip()
        return text if text.startswith("<") else f"<{text}>"
    return f"<legacy-{legacy_id}@{sender.domain}>"


def _thread(value: Any, legacy_id: str) -> str:
    """The thread's id as an ObjectId: as given, or derived from the legacy thread's text."""
    if value is None:
        return legacy_id
    text = id_text(value) or str(value)
    return text if is_object_id(text) else hashlib.sha256(text.encode()).hexdigest()[:24]


async def _mailbox(
    store: WarmupMigrationStore,
    document: Mapping[str, Any],
    ids: tuple[str, ...],
    addresses: tuple[str, ...],
    role: str,
) -> Mailbox:
    mailbox_id = next((i for name in ids if (i := id_text(document.get(name)))), None)
    if mailbox_id is not None:
        found = await store.get_mailbox_unscoped(mailbox_id)
        if found is None or not found.is_linked:
            raise NotMigrated(f"the {role} mailbox {mailbox_id} is not linked here")
        return found
    address = first_of(document, addresses)
    if not isinstance(address, str) or "@" not in address:
        raise NotMigrated(f"no {role} mailbox id or address")
    linked = await store.linked_mailboxes_with_email(address.strip().lower())
    if not linked:
        raise NotMigrated(f"the {role} {address.strip()} is not a mailbox linked here")
    if len(linked) > 1:
        raise NotMigrated(f"the {role} {address.strip()} is linked by {len(linked)} users")
    return linked[0]


async def convert(
    store: WarmupMigrationStore, document: Mapping[str, Any], *, now: datetime
) -> WarmupEmail:
    """The warm-up email a legacy document becomes; NotMigrated says why not."""
    legacy_id = id_text(document.get("_id"))
    if legacy_id is None:
        raise NotMigrated("no ObjectId _id")
    raw_status = str(document.get("status") or "").strip().lower()
    if raw_status in UNSENT_STATUSES:
        raise NotMigrated(f"never sent (status {raw_status!r}): the pool plans its own")
    sender = await _mailbox(store, document, SENDER_IDS, SENDERS, "sender")
    recipient = await _mailbox(store, document, RECIPIENT_IDS, RECIPIENTS, "recipient")
    if sender.id == recipient.id:
        raise NotMigrated("sender and recipient are the same mailbox")
    owner = id_text(document.get("user_id"))
    if owner is not None and owner != sender.user_id:
        raise NotMigrated(f"user {owner} does not own the sender mailbox {sender.email}")
    sent_at = _when(document, SENT_TIMES)
    created = _when(document, ("created_at",))
    if raw_status in FAILED_STATUSES:
        status = WarmupStatus.FAILED
    elif raw_status in SENT_STATUSES or (not raw_status and sent_at is not None):
        status = WarmupStatus.SENT
    elif raw_status:
        raise NotMigrated(f"status {raw_status!r} has no equivalent")
    else:
        raise NotMigrated("no status and no send time")
    if status is WarmupStatus.SENT and sent_at is None and created is None:
        raise NotMigrated("sent, but no send time")
    when = sent_at or created or now
    placement = _placement(document) if status is WarmupStatus.SENT else None
    found = (_when(document, FOUND_TIMES) or when) if placement is not None else None
    rescued = _when(document, RESCUE_TIMES) or (found if _flag(document, RESCUE_FLAGS) else None)
    read = _when(document, READ_TIMES) or (found if _flag(document, READ_FLAGS) else None)
    parent = first_of(document, PARENTS)
    in_reply_to = _message_id(parent, legacy_id, sender) if isinstance(parent, str) else None
    step = document.get("step")
    subject, body = first_of(document, SUBJECTS), first_of(document, BODIES)
    error = first_of(document, ERRORS)
    return WarmupEmail.model_validate(
        {
            "_id": legacy_id,
            "user_id": sender.user_id,
            "mailbox_id": sender.id,
            "to_mailbox_id": recipient.id,
            "to_user_id": recipient.user_id,
            "thread_id": _thread(first_of(document, THREADS), legacy_id),
            "step": step
            if isinstance(step, int) and not isinstance(step, bool) and step >= 0
            else int(in_reply_to is not None),
            "message_id": _message_id(first_of(document, MESSAGE_IDS), legacy_id, sender),
            "in_reply_to": in_reply_to,
            "references": in_reply_to,
            "subject": str(subject) if subject is not None else "",
            "body": str(body) if body is not None else "",
            "planned_at": when,
            "status": status,
            "sent_at": when if status is WarmupStatus.SENT else None,
            "last_error": str(error)[:500] if status is WarmupStatus.FAILED and error else None,
            "found_at": found,
            "placement": placement,
            "rescued_at": rescued if placement is Placement.SPAM else None,
            "read_at": read if found is not None else None,
            "reply_planned": bool(_flag(document, REPLY_FLAGS)),
            "created_at": created or when,
            "updated_at": now,
        }
    )


async def migrate_warmup(
    store: WarmupMigrationStore,
    documents: AsyncIterator[Mapping[str, Any]],
    *,
    dry_run: bool = False,
    now: datetime,
    on_document: Callable[[], None] = lambda: None,
) -> MigrationReport:
    """Convert every document; warm-up emails already here (same `_id`) are left alone."""
    report = MigrationReport(collection="warm_up_emails_table", dry_run=dry_run)
    async for document in documents:
        report.read += 1
        on_document()
        legacy_id = id_text(document.get("_id"))
        if legacy_id and await store.get_warmup_email(legacy_id):
            report.already_migrated += 1
            continue
        try:
            email = await convert(store, document, now=now)
        except NotMigrated as reason:
            report.skipped.append(Skipped(legacy_id or f"document {report.read}", str(reason)))
            continue
        if not dry_run:
            await store.insert_warmup_emails([email])
        report.migrated += 1
    return report
