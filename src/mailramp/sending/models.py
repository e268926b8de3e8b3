"""What the sending engine passes between its parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypedDict, Unpack

from mailramp.tracking.models import EmailTracking

EXPIRY_GRACE = timedelta(minutes=5)
"""How long after a campaign's end_time its records that were due inside the window are
still sent (a worker that was a little behind); only then is what is left `expired`."""


class Outcome(StrEnum):
    """What happened to one handed-over message."""

    SENT = "sent"  # the provider accepted it
    BOUNCED = "bounced"  # permanently refused (5xx): counted as sent and bounced
    RETRY = "retry"  # transient failure before the message left: try again later
    FAILED = "failed"  # transient failures used up every attempt
    UNCERTAIN = "uncertain"  # the connection broke while the message was being handed over
    SUPPRESSED = "suppressed"  # the address unsubscribed or bounced after it was imported


@dataclass(frozen=True)
class NextStep:
    """The person's next follow-up, due once this email was sent: its step, the earliest
    moment its delay allows, and the mailbox that sent this one (the whole sequence goes
    from one mailbox)."""

    step: int
    not_before: datetime
    mailbox_id: str


class ResultDetails(TypedDict, total=False):
    """What a SendResult says beyond its outcome, when it applies (see its fields)."""

    retry_at: datetime | None
    message_id: str | None
    attempts: int | None
    next_step: NextStep | None


@dataclass(frozen=True)
class SendResult:
    """The outcome of one record's send attempt."""

    record_id: str
    campaign_id: str
    user_id: str
    recipient_email: str
    outcome: Outcome
    error: str | None = None
    retry_at: datetime | None = None
    # The Message-ID the provider actually sent under, when it replaced ours (Gmail may):
    # a SENT record stores it, since replies name it in In-Reply-To.
    message_id: str | None = None
    # A RETRY that was no attempt (never tried, or the provider said "not before <time>"):
    # the record's attempts go back to this count, so waiting does not use them up.
    attempts: int | None = None
    # A SENT first email or follow-up with a step after it: that step becomes due.
    next_step: NextStep | None = None

    @classmethod
    def of(
        cls,
        record: EmailTracking,
        outcome: Outcome,
        error: str | None = None,
        **details: Unpack[ResultDetails],
    ) -> SendResult:
        """The result of an attempt to send `record`; `details` are `retry_at`, `message_id`,
        `attempts` and `next_step`."""
        email = (record.id, record.campaign_id, record.user_id, record.recipient_email)
        return cls(*email, outcome, error, **details)


@dataclass(frozen=True)
class ImportCounts:
    """What the store did with imported rows."""

    accepted: int
    duplicates: int
    suppressed: int
    total_recipients: int


@dataclass
class InvalidRow:
    """A row left out of an import, and why."""

    row: int
    value: str
    reason: str


@dataclass
class ImportReport:
    """The result of importing a recipient file."""

    accepted: int = 0
    duplicates: int = 0
    suppressed: int = 0
    invalid: list[InvalidRow] = field(default_factory=list)
    invalid_count: int = 0
    total_recipients: int = 0
    rows: int = 0

    def summary(self) -> str:
        """One line for people."""
        return (
            f"{self.rows} rows: {self.accepted} accepted, {self.duplicates} duplicates, "
            f"{self.invalid_count} invalid, {self.suppressed} suppressed; "
            f"the campaign now has {self.total_recipients} recipients"
        )


@dataclass(frozen=True)
class LifecycleReport:
    """What one lifecycle pass changed."""

    activated: int = 0
    completed: int = 0
    expired_records: int = 0
    uncertain_records: int = 0


@dataclass(frozen=True)
class QueueDepth:
    """The send queue across every user, for operators: records a worker could claim now,
    and records being handed to a provider."""

    due: int = 0
    sending: int = 0
