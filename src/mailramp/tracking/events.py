"""The registry of event kinds: what each kind of event is and what it does.

Everything that records, counts, suppresses or reports an event reads this table: the
tracking service (opens, clicks, unsubscribes), the inbox poller (replies, automatic
replies, bounces, delay reports), the send outcomes (a refused recipient is a hard bounce),
metrics recomputation (`TALLIES`: which events each counter counts), telemetry and the
storage tables. A new kind is one entry here (and,
if it feeds a new counter, that counter in `metrics.models.COUNTERS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Protocol

from mailramp.kit.ids import new_object_id
from mailramp.metrics.models import COUNTERS
from mailramp.suppression.models import Suppression, SuppressionReason
from mailramp.tracking.models import EmailEvent, EmailTracking, EventType

EventSource = Literal["human", "machine", "inbox", "manual"]
"""Who made an event: a person or a machine (privacy proxy, link scanner) following a
tracking link, a message found in an inbox, or the campaign's owner by hand (a reply that
came another way, a person stopped)."""


class AddressedEmail(Protocol):
    """Which email an event is about: a tracking record, or a send's result."""

    @property
    def user_id(self) -> str: ...
    @property
    def campaign_id(self) -> str: ...
    @property
    def recipient_email(self) -> str: ...


@dataclass(frozen=True)
class EventKind:
    """One kind of event.

    `firsts` maps each record timestamp the first such event sets (never overwritten) to the
    `campaign_matrix` counter it feeds (unique recipients); `human_firsts` are set too when a
    person, not a machine, made it. `suppresses` puts the address on the user's suppression
    list; `stops_sequence` ends the person's sequence (no later step is sent).
    """

    name: str
    type: EventType
    firsts: Mapping[str, str]
    human_firsts: Mapping[str, str] = field(default_factory=dict)
    suppresses: SuppressionReason | None = None
    stops_sequence: bool = False
    sources: tuple[EventSource, ...] = ("inbox",)

    def firsts_for(self, *, human: bool) -> dict[str, str]:
        """The timestamps (→ counters) an event of this kind sets first, by a person or not."""
        return {**self.firsts, **self.human_firsts} if human else dict(self.firsts)

    def suppression(
        self, record: AddressedEmail, *, now: datetime, detail: str | None = None
    ) -> Suppression | None:
        """The suppression an event of this kind adds for the email's address, if any."""
        if self.suppresses is None:
            return None
        return Suppression(
            id=new_object_id(),
            user_id=record.user_id,
            email=record.recipient_email,
            reason=self.suppresses,
            campaign_id=record.campaign_id,
            detail=detail,
            created_at=now,
        )


# Every inbound kind proves an `uncertain` message did leave: it sets `sent_at` too.
_SENT = {"sent_at": "total_sent"}

OPEN = EventKind(
    "open",
    EventType.OPEN,
    firsts={"opened_at": "total_opened"},
    human_firsts={"human_opened_at": "total_human_opened"},
    sources=("human", "machine"),
)
CLICK = EventKind(
    "click",
    EventType.CLICK,
    # A click shows the message was opened, whether or not its pixel loaded.
    firsts={"clicked_at": "total_clicks", "opened_at": "total_opened"},
    human_firsts={
        "human_clicked_at": "total_human_clicks",
        "human_opened_at": "total_human_opened",
    },
    sources=("human", "machine"),
)
# The unsubscribe link fetched (its page shown, nothing changed) and the trap link fetched:
# counted nowhere, they tell a link scanner's burst (tracking/classify.py).
UNSUBSCRIBE_PAGE = EventKind(
    "unsubscribe_page", EventType.UNSUBSCRIBE_PAGE, firsts={}, sources=("human", "machine")
)
TRAP = EventKind("trap", EventType.TRAP, firsts={}, sources=("machine",))
UNSUBSCRIBE = EventKind(
    "unsubscribe",
    EventType.UNSUBSCRIBE,
    firsts={"unsubscribed_at": "total_unsubscribed"},
    suppresses=SuppressionReason.UNSUBSCRIBED,
    stops_sequence=True,
    sources=("human",),
)
REPLY = EventKind(
    "reply",
    EventType.REPLY,
    firsts={"replied_at": "total_replied", **_SENT},
    stops_sequence=True,
    sources=("inbox", "manual"),
)
AUTO_REPLY = EventKind(
    "auto_reply", EventType.AUTO_REPLY, firsts={"auto_replied_at": "total_auto_replied", **_SENT}
)
HARD_BOUNCE = EventKind(
    "hard_bounce",
    EventType.BOUNCE,
    firsts={"bounced_at": "total_bounced", **_SENT},
    suppresses=SuppressionReason.BOUNCED,
    stops_sequence=True,
)
# A soft bounce (mailbox full, greylisted for too long) is counted as a bounce but the
# address stays: the next message may arrive.
SOFT_BOUNCE = EventKind(
    "soft_bounce", EventType.BOUNCE, firsts={"bounced_at": "total_bounced", **_SENT}
)
# A bounce, complaint or automatic reply that quotes no Message-ID of ours is matched to the
# newest email its mailbox sent to the address it names, within this window.
MATCH_WINDOW = timedelta(days=14)
# Soft bounces do not suppress an address, unless it had this many within this window
# (across the owner's campaigns): then it is suppressed as a hard bounce would be.
SOFT_BOUNCE_LIMIT = 3
SOFT_BOUNCE_WINDOW = timedelta(days=30)

# A complaint (the recipient pressed "report spam"): the address is never mailed again.
COMPLAINT = EventKind(
    "complaint",
    EventType.COMPLAINT,
    firsts={"complained_at": "total_complained", **_SENT},
    suppresses=SuppressionReason.COMPLAINED,
    stops_sequence=True,
)
# A delay report is not a bounce: the message may still arrive.
DELAYED = EventKind("delayed", EventType.DELAY, firsts=dict(_SENT))
# A positive delivery report (RFC 3464 `Action: delivered`, an SES Delivery): logged, and
# proof an `uncertain` message left; `delivered_at` was set when the provider took it.
DELIVERED = EventKind("delivered", EventType.DELIVERED, firsts=dict(_SENT))
# A person stopped — by hand, or because a colleague answered (tracking/stops.py): an
# email not sent yet is not sent; nothing is counted.
STOPPED = EventKind(
    "stopped", EventType.STOPPED, firsts={}, stops_sequence=True, sources=("manual",)
)

EVENT_KINDS: Mapping[str, EventKind] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            OPEN,
            CLICK,
            UNSUBSCRIBE_PAGE,
            TRAP,
            UNSUBSCRIBE,
            REPLY,
            AUTO_REPLY,
            HARD_BOUNCE,
            SOFT_BOUNCE,
            COMPLAINT,
            DELAYED,
            DELIVERED,
            STOPPED,
        )
    }
)

COUNTED_ON_FIRST_EMAIL = frozenset({"sent_at"})
"""Timestamps whose counter counts a person through their first email alone: a follow-up
is only ever sent after the first email was, so a person was sent to exactly when their
first email was (a later step's `sent_at` moves no counter, and no person row is written
for it on the send path)."""

# What the send outcome `sent` records: the provider took the message. `delivered_at`
# feeds no counter of its own: `total_delivered` is sent minus bounced (metrics.models).
SENT_FIRSTS: Mapping[str, str] = MappingProxyType(dict(_SENT))
SENT_AT_HANDOVER = "delivered_at"


def _all_firsts() -> dict[str, str]:
    firsts: dict[str, str] = dict(SENT_FIRSTS)
    for kind in EVENT_KINDS.values():
        firsts |= {**kind.firsts, **kind.human_firsts}
    return firsts


_FIRSTS = _all_firsts()

FIRST_FIELDS = frozenset({*_FIRSTS, SENT_AT_HANDOVER})
"""The record timestamps set by the first event of a kind (never overwritten)."""

COUNTED_BY: Mapping[str, str] = MappingProxyType(
    {counter: first for first, counter in _FIRSTS.items()}
)
"""Which record timestamp each counter counts (the record's first event of its kinds)."""


@dataclass(frozen=True)
class Tally:
    """Which events a counter counts the people of: those with at least one event of
    `types` (made by a person, not a machine, when `people_only`)."""

    types: frozenset[EventType]
    people_only: bool = False

    def counts(self, kind: EventType | str, *, machine: bool) -> bool:
        """Whether an event of `kind`, by a machine or not, counts its person here."""
        return EventType(kind) in self.types and not (self.people_only and machine)


def _tallies() -> dict[str, Tally]:
    types: dict[str, set[EventType]] = {}
    people: set[str] = set()
    made = [(SENT_FIRSTS, EventType.SENT, False)]
    for kind in EVENT_KINDS.values():
        made += [(kind.firsts, kind.type, False), (kind.human_firsts, kind.type, True)]
    for firsts, kind_type, human in made:
        for counter in firsts.values():
            types.setdefault(counter, set()).add(kind_type)
            if human:
                people.add(counter)
    return {counter: Tally(frozenset(found), counter in people) for counter, found in types.items()}


TALLIES: Mapping[str, Tally] = MappingProxyType(_tallies())
"""What each counter counts in the event log: the same kinds whose first event moves it
(`EventKind.firsts`), so the counters moved as events are appended and the counters
rebuilt from the log (`recompute_metrics`) are one rule read twice."""

TALLIED_TYPES: tuple[str, ...] = tuple(
    sorted({kind.value for tally in TALLIES.values() for kind in tally.types})
)
"""Every type of event some counter counts, as stored."""


@dataclass(frozen=True)
class Moment:
    """A record timestamp a counter counts, and the event it stands for when a record
    holds it without one (written before the event log: `backfilled_moments`)."""

    field: str
    kind: EventType
    types: frozenset[EventType]
    people_only: bool
    machine: bool


def backfilled_moments() -> list[Moment]:
    """Each counted record timestamp with the event it stands for alone — the first type
    (in `EventType`'s order) that sets it: `sent` before anything inbound, an open before
    a click — made by a person, or by an unknown machine when a person's moment beside it
    says who (an `opened_at` without `human_opened_at`). People's moments come first: an
    open by a person is an open too, so `opened_at` then finds an event and needs none."""
    order = list(EventType)
    moments = []
    for counter, tally in TALLIES.items():
        beside = any(o.people_only and o.types == tally.types for o in TALLIES.values())
        moments.append(
            Moment(
                field=COUNTED_BY[counter],
                kind=min(tally.types, key=order.index),
                types=tally.types,
                people_only=tally.people_only,
                machine=beside and not tally.people_only,
            )
        )
    return sorted(moments, key=lambda moment: not moment.people_only)


EVENT_SOURCES: Mapping[EventType, tuple[EventSource, ...]] = MappingProxyType(
    {kind.type: kind.sources for kind in EVENT_KINDS.values()}
)
"""Which sources each type of event can have (telemetry shows every pair from the start)."""


def check_firsts(firsts: Mapping[str, str]) -> None:
    """ValueError unless `firsts` maps record timestamps an event sets to counters."""
    if set(firsts) - FIRST_FIELDS or set(firsts.values()) - set(COUNTERS):
        raise ValueError(f"not event fields or counters: {sorted(firsts.items())}")


class ChangedEmail(NamedTuple):
    """An email whose state a store changed: what its event names."""

    record_id: str
    campaign_id: str
    user_id: str
    recipient_email: str


def state_events(
    changed: Iterable[ChangedEmail],
    kind: EventType,
    at: datetime,
    details: Mapping[str, Any] | None = None,
) -> list[EmailEvent]:
    """One event of `kind` for each email whose state changed (queued, sent, failed,
    uncertain, expired, cancelled, suppressed, stopped): what a store appends in the unit
    of work that made the change."""
    return [
        EmailEvent(
            id=new_object_id(),
            record_id=email.record_id,
            campaign_id=email.campaign_id,
            user_id=email.user_id,
            recipient_email=email.recipient_email,
            type=kind,
            occurred_at=at,
            details=dict(details or {}),
        )
        for email in changed
    ]


def numbered(events: Sequence[EmailEvent], last: Mapping[str, int]) -> list[EmailEvent]:
    """`events` with their `seq`: each user's next numbers after `last[user_id]` (what the
    user's counter held before), in the order given."""
    following = dict(last)
    out = []
    for event in events:
        following[event.user_id] = following.get(event.user_id, 0) + 1
        out.append(event.model_copy(update={"seq": following[event.user_id]}))
    return out


def sequence_stopped(cause: EmailEvent, stopped: Iterable[ChangedEmail]) -> list[EmailEvent]:
    """The `stopped` events of the emails an event's stop ended (a reply, a bounce, an
    opt-out, a stop by hand — whose own event already says so for its email)."""
    others = [
        email
        for email in stopped
        if not (cause.type is EventType.STOPPED and email.record_id == cause.record_id)
    ]
    return state_events(others, EventType.STOPPED, cause.occurred_at, {"because": cause.type.value})


def queued(records: Iterable[EmailTracking]) -> list[EmailEvent]:
    """The `queued` events of new emails, at their creation."""
    return [
        event
        for record in records
        for event in state_events(
            [ChangedEmail(record.id, record.campaign_id, record.user_id, record.recipient_email)],
            EventType.QUEUED,
            record.created_at,
        )
    ]


def taken_out(emails: Iterable[ChangedEmail], reason: str, at: datetime) -> list[EmailEvent]:
    """The `cancelled` events of emails taken out of the queue before they were sent (a
    refused import, a removed step): the record goes, its events stay."""
    return state_events(emails, EventType.CANCELLED, at, {"reason": reason})
