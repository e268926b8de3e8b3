"""`mailramp migrate-legacy`: `email_campaigns` documents → `campaign_creation_table` +
`campaign_matrix` records (schema migration notes 1 and 2).

- Idempotent: a migrated campaign keeps the legacy document's `_id`, and its `campaign_id` is
  a UUID derived from that `_id`, so a second run finds it and changes nothing.
- Originals are never changed; every field the mapping does not use is kept in the new
  campaign's `legacy_fields`.
- Every document skipped is reported with its `_id` and the reason.

The field mapping (the first legacy name found wins) is in docs/legacy-migration.md and in
the name tuples below.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from bson import ObjectId, json_util

from mailramp.accounts.repository import UserRepository
from mailramp.campaigns.models import MAX_DURATION_HOURS, Campaign, CampaignStatus, MessageFormat
from mailramp.campaigns.repository import CampaignRepository
from mailramp.errors import ImportFileError
from mailramp.kit.ids import is_object_id, new_object_id
from mailramp.legacy.repository import LegacyRepository
from mailramp.mailboxes.repository import MailboxRepository
from mailramp.metrics.models import COUNTERS, CampaignMetrics, derived_fields

LEGACY_NAMESPACE = uuid.UUID("6f0d7a52-3a4e-4c33-9d4f-6a0e2b1c9e11")

STATUS_MAP: dict[str, CampaignStatus] = {
    **{status.value: status for status in CampaignStatus},
    "draft": CampaignStatus.PAUSED,
    "pending": CampaignStatus.SCHEDULED,
    "queued": CampaignStatus.SCHEDULED,
    "running": CampaignStatus.ACTIVE,
    "in_progress": CampaignStatus.ACTIVE,
    "sending": CampaignStatus.ACTIVE,
    "started": CampaignStatus.ACTIVE,
    "done": CampaignStatus.COMPLETED,
    "finished": CampaignStatus.COMPLETED,
    "sent": CampaignStatus.COMPLETED,
    "complete": CampaignStatus.COMPLETED,
    "stopped": CampaignStatus.CANCELLED,
    "canceled": CampaignStatus.CANCELLED,
    "aborted": CampaignStatus.CANCELLED,
}
NAMES = ("campaign_name", "name", "title")
SUBJECTS = ("subject", "email_subject")
MESSAGES = ("message", "body", "email_body", "content", "html")
STARTS = ("start_time", "scheduled_at", "start_date", "send_at")
ENDS = ("end_time", "end_date")
DURATIONS = ("duration", "duration_hours")
SENDERS = ("sender_email", "from_email", "from", "mailbox_email", "email")
RECIPIENT_COUNTS = ("total_recipients", "recipient_count")
RECIPIENT_LISTS = ("recipients", "emails")
COUNTER_NAMES: dict[str, tuple[str, ...]] = {
    "total_sent": ("total_sent", "sent", "sent_count"),
    "total_opened": ("total_opened", "opened", "opens", "open_count"),
    "total_clicks": ("total_clicks", "clicked", "clicks", "click_count"),
    "total_replied": ("total_replied", "replied", "replies", "reply_count"),
    "total_bounced": ("total_bounced", "bounced", "bounces", "bounce_count"),
    "total_unsubscribed": ("total_unsubscribed", "unsubscribed", "unsubscribes"),
}
USED = frozenset(
    {"_id", "user_id", "mailbox_id", "status", "created_at", "updated_at"}
    | set(NAMES) | set(SUBJECTS) | set(MESSAGES) | set(STARTS) | set(ENDS) | set(DURATIONS)
    | set(SENDERS) | set(RECIPIENT_COUNTS)
    | {name for names in COUNTER_NAMES.values() for name in names}
)  # fmt: skip


@dataclass(frozen=True)
class Skipped:
    """A document not migrated, and why."""

    document_id: str
    reason: str


@dataclass
class MigrationReport:
    """What a run over one legacy collection did (or, with --dry-run, would do)."""

    collection: str = "email_campaigns"
    read: int = 0
    migrated: int = 0
    already_migrated: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would migrate" if self.dry_run else "migrated"
        return (
            f"{self.collection}: {self.read} document(s) read: {verb} {self.migrated}, "
            f"{self.already_migrated} already migrated, {len(self.skipped)} skipped"
        )


class NotMigrated(Exception):
    """Why one document cannot become a campaign."""


class LegacyStore(
    LegacyRepository, CampaignRepository, MailboxRepository, UserRepository, Protocol
):
    """What the migration of legacy campaigns reads and writes."""


def campaign_id_for(legacy_id: str) -> str:
    """The campaign_id a legacy document's campaign gets: the same on every run, and a
    UUID4 in form like every campaign_id (hash bits with the version and variant set)."""
    digest = hashlib.sha256(f"{LEGACY_NAMESPACE}/email_campaigns/{legacy_id}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def read_export(path: Path) -> Iterator[dict[str, Any]]:
    """Documents of a `mongoexport` file: JSON lines (the default) or a JSON array
    (--jsonArray), in Extended JSON (canonical or relaxed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ImportFileError(f"{path} is not UTF-8 text: {error}") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            documents = json_util.loads(stripped)
        except (ValueError, TypeError) as error:
            raise ImportFileError(f"{path} is not a JSON array of documents: {error}") from None
        for index, document in enumerate(documents, start=1):
            if not isinstance(document, dict):
                raise ImportFileError(f"{path}: element {index} is not a document", row=index)
            yield document
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            document = json_util.loads(line)
        except (ValueError, TypeError) as error:
            raise ImportFileError(f"{path} line {number}: not JSON: {error}", row=number) from None
        if not isinstance(document, dict):
            raise ImportFileError(f"{path} line {number}: not a document", row=number)
        yield document


def first_of(document: Mapping[str, Any], names: Iterable[str]) -> Any:
    """The value of the first of `names` the document has (not None, not empty)."""
    for name in names:
        value = document.get(name)
        if value not in (None, ""):
            return value
    return None


def id_text(value: Any) -> str | None:
    """An ObjectId as text, however the export wrote it; None when it is not one."""
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, dict) and isinstance(value.get("$oid"), str):
        return str(value["$oid"])
    if isinstance(value, str) and is_object_id(value):
        return value
    return None


def moment(value: Any, name: str) -> datetime:
    """A legacy date (BSON, Extended JSON, epoch milliseconds, ISO text) in UTC; NotMigrated
    naming `name` when it is none of them."""
    if isinstance(value, dict) and "$date" in value:
        value = value["$date"]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise NotMigrated(f"{name} {value!r} is not a date") from None
    if not isinstance(value, datetime):
        raise NotMigrated(f"{name} {value!r} is not a date")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise NotMigrated(f"{name} {value!r} is not a count")
    return int(value)


def _plain(value: Any) -> Any:
    """A legacy value as JSON can hold it (ObjectIds as strings, dates as ISO text)."""
    return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))


async def convert(
    store: LegacyStore, document: Mapping[str, Any], *, now: datetime
) -> tuple[Campaign, CampaignMetrics]:
    """The campaign and metrics a legacy document becomes; NotMigrated says why not."""
    legacy_id = id_text(document.get("_id"))
    if legacy_id is None:
        raise NotMigrated("no ObjectId _id")
    user_id = id_text(document.get("user_id"))
    if user_id is None:
        raise NotMigrated("no user_id")
    user = await store.get_user(user_id)
    if user is None:
        raise NotMigrated(f"user {user_id} does not exist")
    mailbox_id = id_text(document.get("mailbox_id"))
    mailbox = await store.get_mailbox(user_id, mailbox_id) if mailbox_id else None
    if mailbox is None:
        sender = first_of(document, SENDERS)
        if isinstance(sender, str):
            mailbox = await store.get_mailbox_by_email(user_id, sender.strip().lower())
        if mailbox is None:
            given = mailbox_id or sender
            raise NotMigrated(
                f"mailbox {given!r} is not one of the user's mailboxes"
                if given
                else "no mailbox_id or sender address"
            )
    subject = first_of(document, SUBJECTS)
    message_field = next((name for name in MESSAGES if document.get(name)), None)
    if not isinstance(subject, str) or not subject.strip():
        raise NotMigrated("no subject")
    if message_field is None or not isinstance(document[message_field], str):
        raise NotMigrated("no message body")
    name = first_of(document, NAMES) or subject
    created = moment(document["created_at"], "created_at") if document.get("created_at") else now
    start_value = first_of(document, STARTS)
    start = moment(start_value, "start_time") if start_value is not None else created
    duration_value = first_of(document, DURATIONS)
    end_value = first_of(document, ENDS)
    if duration_value is not None:
        if isinstance(duration_value, bool) or not isinstance(duration_value, int | float):
            raise NotMigrated(f"duration {duration_value!r} is not a number of hours")
        duration = float(duration_value)
    elif end_value is not None:
        duration = (moment(end_value, "end_time") - start).total_seconds() / 3600
    else:
        raise NotMigrated("no duration or end_time")
    if not 0 < duration <= MAX_DURATION_HOURS:
        raise NotMigrated(f"duration {duration:g} hours is out of range")
    raw_status = str(document.get("status") or "completed").strip().lower()
    status = STATUS_MAP.get(raw_status)
    if status is None:
        raise NotMigrated(f"status {raw_status!r} has no equivalent")
    recipients = first_of(document, RECIPIENT_COUNTS)
    if recipients is None:
        listed = first_of(document, RECIPIENT_LISTS)
        recipients = len(listed) if isinstance(listed, list) else 0
    counters = dict.fromkeys(COUNTERS, 0)
    for counter, names in COUNTER_NAMES.items():
        value = first_of(document, names)
        if value is not None:
            counters[counter] = _count(value, counter)
    kept = {key: _plain(value) for key, value in document.items() if key not in USED}
    campaign_id = campaign_id_for(legacy_id)
    campaign = Campaign(
        id=legacy_id,
        campaign_id=campaign_id,
        user_id=user_id,
        mailbox_id=mailbox.id,
        campaign_name=str(name)[:200],
        subject=subject,
        message=document[message_field],
        message_format=MessageFormat.HTML if message_field == "html" else MessageFormat.TEXT,
        duration=duration,
        start_time=start,
        end_time=start + timedelta(hours=duration),
        status=status,
        total_recipients=_count(recipients, "total_recipients"),
        created_at=created,
        updated_at=now,
        created_by=user_id,
        legacy_fields=kept or None,
    )
    metrics = CampaignMetrics.model_validate(
        {
            "_id": new_object_id(),
            "campaign_id": campaign_id,
            "user_id": user_id,
            "mailbox_id": mailbox.id,
            **counters,
            **derived_fields(counters),
            "created_at": now,
            "last_updated": now,
        }
    )
    return campaign, metrics


async def migrate(
    store: LegacyStore,
    documents: AsyncIterator[Mapping[str, Any]],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    on_document: Callable[[], None] = lambda: None,
) -> MigrationReport:
    """Convert every document; existing campaigns (same `campaign_id`) are left alone."""
    now = now or datetime.now(UTC)
    report = MigrationReport(dry_run=dry_run)
    async for document in documents:
        report.read += 1
        on_document()
        shown = id_text(document.get("_id")) or f"document {report.read}"
        legacy_id = id_text(document.get("_id"))
        if legacy_id and await store.get_campaign_unscoped(campaign_id_for(legacy_id)):
            report.already_migrated += 1
            continue
        try:
            campaign, metrics = await convert(store, document, now=now)
        except NotMigrated as reason:
            report.skipped.append(Skipped(shown, str(reason)))
            continue
        if not dry_run:
            await store.insert_campaign(campaign, metrics)
        report.migrated += 1
    return report
