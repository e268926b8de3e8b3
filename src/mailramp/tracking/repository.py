"""What the tracking and sending domains need from storage."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from mailramp.kit.types import Page
from mailramp.metrics.models import CampaignMetrics
from mailramp.suppression.models import Suppression
from mailramp.tracking.models import (
    ConversationFile,
    ConversationMessage,
    EmailEvent,
    EmailTracking,
    EventType,
    TrackingStatus,
    UnmatchedInbound,
)


@dataclass(frozen=True)
class RecipientQuery:
    """Which records of one campaign a list shows: of one status (all if None), whose
    address contains `search` (any if None; case-insensitive), of one step (all if None),
    one page."""

    campaign_id: str
    status: TrackingStatus | None = None
    offset: int = 0
    limit: int = 50
    search: str | None = None
    step: int | None = None


@dataclass(frozen=True)
class EventLogQuery:
    """Which of a user's events a reader by cursor takes: numbered after `after`, of one
    campaign (all if None), of some kinds (all if empty), from `since` until before
    `until`, at most `limit`."""

    after: int = 0
    campaign_id: str | None = None
    kinds: tuple[EventType, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100

    @property
    def filtered(self) -> bool:
        """Whether it skips numbers by design (any filter but the cursor)."""
        return bool(self.campaign_id or self.kinds or self.since or self.until)


@dataclass(frozen=True)
class LeadStatusMove:
    """A person's lead status set to `to` (None clears it), only if it is still `was`: a
    change made meanwhile by someone else raises ConflictError and nothing is written."""

    was: str | None
    to: str | None


@dataclass(frozen=True)
class ReceivedMessage:
    """A reply kept for the inbox, with its kept attachments' contents; stored once per
    mailbox and Message-ID (read again after a crash, it is not kept twice)."""

    message: ConversationMessage
    files: Sequence[ConversationFile] = ()


@dataclass(frozen=True)
class EventChange:
    """What recording one event changes beside appending it: the record timestamps its
    first occurrence sets (→ the counters they feed), the address it suppresses, and the
    record's status move (only from `status_from`), whether it ends the person's sequence
    (their emails not sent yet are `stopped`, in the same unit of work), the moment
    before which none of their emails not sent yet may go (an out-of-office), the
    person's new lead status, and the reply kept for the inbox."""

    firsts: Mapping[str, str]
    suppress: Suppression | None = None
    status_from: Collection[TrackingStatus] = ()
    status_to: TrackingStatus | None = None
    stops_sequence: bool = False
    postpone_until: datetime | None = None
    lead_status: LeadStatusMove | None = None
    received: ReceivedMessage | None = None


@dataclass(frozen=True)
class SettledEvent:
    """An open or click decided (tracking/classify.py): the event with its verdict
    (`machine`, `machine_reason`, `details`), and the record timestamps (→ counters) a
    person's event sets first."""

    event: EmailEvent
    firsts: Mapping[str, str]


@dataclass(frozen=True)
class UnsettledEmail:
    """An email with opens or clicks to decide: its owner, and when the oldest of them due
    was made."""

    user_id: str
    record_id: str
    since: datetime


class TrackingRepository(Protocol):
    """`email_tracking` records, scoped to their owner."""

    async def insert_tracking(self, records: Sequence[EmailTracking]) -> int:
        """Store new records in one unit of work; a recipient already in the campaign raises
        DuplicateError naming `recipient_email` and stores none of them."""
        ...

    async def get_tracking(self, user_id: str, tracking_id: str) -> EmailTracking | None:
        """The user's record with this id."""
        ...

    async def list_tracking(self, user_id: str, query: RecipientQuery) -> Page[EmailTracking]:
        """The user's records `query` selects (of one campaign), in scheduled order."""
        ...

    async def export_tracking(
        self, user_id: str, campaign_id: str, *, after: tuple[str, int] | None, limit: int
    ) -> list[EmailTracking]:
        """Up to `limit` of the user's campaign's records after the (recipient_email, step)
        `after` (None: from the first), by address then step. Paged by that key, which never
        changes, an export neither skips nor repeats a record whose time or status changes
        while it is read (offsets do, on a campaign that is sending)."""
        ...

    async def count_tracking_by_status(self, user_id: str, campaign_id: str) -> dict[str, int]:
        """How many of a campaign's records are in each status (statuses with none left out)."""
        ...

    async def get_tracking_unscoped(self, tracking_id: str) -> EmailTracking | None:
        """A record whoever owns it — for signed tracking requests and the inbox poller."""
        ...

    async def find_tracking_by_message_ids(
        self, message_ids: Collection[str]
    ) -> list[EmailTracking]:
        """Records whose Message-ID is one of these (matching replies and bounces)."""
        ...

    async def find_answers_by_message_ids(
        self, message_ids: Collection[str]
    ) -> list[ConversationMessage]:
        """Answers sent from the inbox whose Message-ID is one of these (a reply to an
        answer joins its thread)."""
        ...

    async def record_answer_open(self, answer_id: str, *, at: datetime, human: bool) -> bool:
        """Note a tracked answer's first open (and first by a person, if `human`); whether
        there is such an answer."""
        ...

    async def find_latest_sent_to(
        self, mailbox_id: str, recipient_email: str, *, since: datetime
    ) -> EmailTracking | None:
        """The newest record whose email this mailbox sent to `recipient_email` (any case)
        at or after `since` — how a bounce or auto-reply that quotes no Message-ID is
        matched."""
        ...

    async def count_soft_bounces(
        self, user_id: str, recipient_email: str, *, since: datetime
    ) -> int:
        """How many soft bounces of `recipient_email` the user's emails had since `since`."""
        ...

    async def add_unmatched(self, item: UnmatchedInbound) -> None:
        """Keep a bounce or complaint that matched no email."""
        ...

    async def list_unmatched(
        self, user_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[UnmatchedInbound]:
        """The user's unmatched bounces and complaints, newest first."""
        ...

    async def record_event(self, event: EmailEvent, change: EventChange) -> dict[str, int]:
        """In one unit of work: append the event; for each `change.firsts` item (record
        timestamp field → metrics counter) set the field if still empty and, if so, set it
        on the person (`campaign_recipients`) if still empty there and, if so, add one to
        the counter; suppress the address, move the record's status and end the person's
        sequence as `change` says. Returns the counters that moved."""
        ...

    async def recompute_metrics(self, campaign_id: str, *, now: datetime) -> CampaignMetrics | None:
        """Rebuild a campaign's counters and rates from its event log: a counter counts
        the people with at least one event of its kinds (`events.TALLIES`)."""
        ...

    async def unsettled_emails(self, *, before: datetime, limit: int) -> list[UnsettledEmail]:
        """Emails (of any user) with an event still settling that was made before `before`,
        oldest first, at most `limit`."""
        ...

    async def list_fetches(
        self, user_id: str, record_id: str, *, since: datetime, limit: int
    ) -> list[EmailEvent]:
        """A record's requests for its message's URLs (`classify.FETCHES`) made at or after
        `since`, oldest first."""
        ...

    async def settle_events(
        self, record_id: str, settled: Sequence[SettledEvent]
    ) -> list[EmailEvent]:
        """In one unit of work, for each event still settling: store its verdict and set
        its `firsts` as `record_event` does (the field if empty, then the person's, then
        the counter). An event decided meanwhile (by another worker) is left as it is.
        Returns the events decided here."""
        ...

    async def event_series(self, user_id: str, campaign_id: str) -> list[dict[str, Any]]:
        """The user's campaign's events per hour: hour, type, machine, count — for charts."""
        ...

    async def list_events(
        self, user_id: str, record_id: str, *, limit: int = 100
    ) -> list[EmailEvent]:
        """A record's events, oldest first."""
        ...

    async def last_event_seq(self, user_id: str) -> int:
        """The number the user's latest event was given (0 before the first)."""
        ...

    async def list_event_log(self, user_id: str, query: EventLogQuery) -> list[EmailEvent]:
        """The user's events the query asks for, in number order. Every change of an email's
        state appends its event with the next number of its user, in the unit of work that
        makes the change."""
        ...
