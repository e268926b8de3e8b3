"""Warm-up emails: what one opted-in mailbox sent another, and where it landed."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from mailramp.kit.types import ObjectIdStr, Record, UTCDateTime


class WarmupStatus(StrEnum):
    """Where a warm-up email is: planned, handed to the provider, or given up on."""

    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Placement(StrEnum):
    """Where the receiving mailbox found a warm-up email."""

    INBOX = "inbox"
    SPAM = "spam"
    OTHER = "other"


class WarmupEmail(Record):
    """One warm-up email, from `mailbox_id` (owned by `user_id`) to `to_mailbox_id`; the
    first of a conversation (`step` 0, `thread_id` its own id) or a reply in it. Stored in
    `warmup_emails` — the schema's `warm_up_emails_table` stays the previous application's,
    read-only — and never counted in a campaign."""

    id: ObjectIdStr = Field(alias="_id")
    user_id: ObjectIdStr
    mailbox_id: ObjectIdStr
    to_mailbox_id: ObjectIdStr
    to_user_id: ObjectIdStr
    thread_id: ObjectIdStr
    step: int = 0
    message_id: str
    in_reply_to: str | None = None
    references: str | None = None
    """The thread's Message-IDs before it, oldest first (a reply's References header)."""
    subject: str
    body: str
    planned_at: UTCDateTime
    status: WarmupStatus = WarmupStatus.PLANNED
    sent_at: UTCDateTime | None = None
    attempts: int = 0
    last_error: str | None = None
    found_at: UTCDateTime | None = None
    placement: Placement | None = None
    rescued_at: UTCDateTime | None = None
    """When the receiving side moved it out of spam into the inbox."""
    read_at: UTCDateTime | None = None
    reply_planned: bool = False
    created_at: UTCDateTime
    updated_at: UTCDateTime
