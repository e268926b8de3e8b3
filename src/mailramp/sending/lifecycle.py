"""The send queue's transitions that are not a send's outcome (those are in `outcomes.py`):
a lease that ran out mid-send, a window that closed, a campaign cancelled, a campaign with
nothing left to send. Both storage adapters write exactly these values; they only choose
how to find the records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailramp.campaigns.models import CampaignStatus
from mailramp.tracking.models import TrackingStatus

LEASE_EXPIRED = (
    "the worker's lease expired while sending: the message may or may not have left; "
    "not resent automatically"
)

# A campaign whose records are all past these states has nothing left to send.
UNFINISHED_STATES = (
    TrackingStatus.PENDING.value,
    TrackingStatus.WAITING.value,
    TrackingStatus.SENDING.value,
)


def released(status: TrackingStatus, now: datetime) -> dict[str, Any]:
    """A record put in `status` with no worker holding it any more."""
    return {
        "status": status.value,
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": now,
    }


def lease_expired(now: datetime) -> dict[str, Any]:
    """A `sending` record whose worker's lease ran out: it may or may not have left, so it
    becomes `uncertain` and is never resent automatically."""
    return {**released(TrackingStatus.UNCERTAIN, now), "last_error": LEASE_EXPIRED}


def window_closed(now: datetime) -> dict[str, Any]:
    """An unsent record (pending, or a follow-up waiting) of a campaign whose window closed
    (after EXPIRY_GRACE)."""
    return released(TrackingStatus.EXPIRED, now)


def cancelled_pending(now: datetime) -> dict[str, Any]:
    """An unsent record (pending, or a follow-up waiting) of a cancelled campaign."""
    return released(TrackingStatus.CANCELLED, now)


def campaign_started(now: datetime) -> dict[str, Any]:
    """A scheduled campaign whose start_time came."""
    return {"status": CampaignStatus.ACTIVE.value, "updated_at": now}


def campaign_completed(now: datetime) -> dict[str, Any]:
    """An active campaign with nothing left to send."""
    return {"status": CampaignStatus.COMPLETED.value, "updated_at": now}


@dataclass(frozen=True)
class LimitCount:
    """Records that count against their mailbox's daily limit: in these states, dated by
    this timestamp, of any campaign or only of the others (the one being planned counts its
    own pending records itself)."""

    statuses: tuple[str, ...]
    moment: str
    other_campaigns_only: bool = False


DAILY_LIMIT_COUNTS = (
    # What other campaigns have planned: emails due, and follow-ups planned after them.
    LimitCount(
        (TrackingStatus.PENDING.value, TrackingStatus.WAITING.value),
        "scheduled_at",
        other_campaigns_only=True,
    ),
    # What any campaign already made: it left (a bounce too), on the day it left.
    LimitCount((TrackingStatus.SENT.value, TrackingStatus.BOUNCED.value), "sent_at"),
    # What is being handed over or may have left.
    LimitCount((TrackingStatus.SENDING.value, TrackingStatus.UNCERTAIN.value), "scheduled_at"),
)
MADE_COUNTS = tuple(count for count in DAILY_LIMIT_COUNTS if not count.other_campaigns_only)
"""What a mailbox already made, whichever campaign: counted when its emails leave."""
