"""Automatic brakes: sending stops by itself before a mailbox's reputation is burnt.

- **A campaign's bounces.** A campaign pauses itself when more than
  `bounce_rate_percent` (3 %) of the people it emailed bounced, once it emailed at least
  `bounce_min_sends` (20): a list that bounces that much is stale, and every further bounce
  costs every mailbox sending it.
- **A mailbox's complaints.** A mailbox stops campaign sends when its complaint rate over
  the last 30 days passes `complaint_rate_percent` (0.3 %, Gmail's limit for bulk senders).
- **A mailbox's inbox placement.** It stops campaign sends too when fewer than
  `inbox_placement_percent` (70 %) of its warm-up emails reached the inbox over the last
  7 days, once at least `placement_min_emails` (10) were found.

A mailbox's brake stops its campaign emails, never its warm-up, which is how it recovers.
Each brake says why (the rate, the threshold, the period) on the campaign or mailbox, and
resuming is one action. After a resume the same brake waits `RESUME_GRACE` (7 days) unless
the rate rises above what it was at the resume: the owner decided, with the figure in
front of them, and is not overruled by the same figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailramp.mailboxes.models import BrakeKind, BrakeRules, MailboxDay
from mailramp.mailboxes.ramp import day_key
from mailramp.metrics.models import percent

RESUME_GRACE = timedelta(days=7)
COMPLAINT_DAYS = 30
PLACEMENT_DAYS = 7


@dataclass(frozen=True)
class Reading:
    """One rate a brake watches, in percent, over `count` emails (`of`)."""

    rate: float
    count: int
    of: int


def watched(kind: BrakeKind, reading: Reading, rules: BrakeRules) -> tuple[float, float]:
    """The figure a brake compares with its threshold, both as "higher is worse": the
    bounce or complaint rate, or the share of warm-up emails that missed the inbox."""
    if kind is BrakeKind.BOUNCES:
        return reading.rate, rules.bounce_rate_percent
    if kind is BrakeKind.COMPLAINTS:
        return reading.rate, rules.complaint_rate_percent
    return round(100.0 - reading.rate, 2), round(100.0 - rules.inbox_placement_percent, 2)


def enough(kind: BrakeKind, reading: Reading, rules: BrakeRules) -> bool:
    """Whether the reading rests on enough emails to brake on."""
    if kind is BrakeKind.BOUNCES:
        return reading.of >= rules.bounce_min_sends
    if kind is BrakeKind.COMPLAINTS:
        return reading.count > 0
    return reading.of >= rules.placement_min_emails


def should_brake(
    rate: float,
    threshold: float,
    *,
    resumed_at: datetime | None,
    resumed_rate: float | None,
    now: datetime,
) -> bool:
    """Whether a rate past its threshold brakes now: not within RESUME_GRACE of a resume
    unless it rose above the rate at that resume."""
    if rate <= threshold:
        return False
    if resumed_at is not None and now - resumed_at < RESUME_GRACE:
        return resumed_rate is None or rate > resumed_rate
    return True


def bounce_reading(people_sent: int, people_bounced: int) -> Reading:
    return Reading(percent(people_bounced, people_sent), people_bounced, people_sent)


def bounce_reason(reading: Reading, rules: BrakeRules) -> str:
    return (
        f"paused by its bounce brake: {reading.count} of {reading.of} people bounced "
        f"({reading.rate:g} %, above {rules.bounce_rate_percent:g} %); clean the list, "
        "then resume"
    )


def _since(days: Sequence[MailboxDay], now: datetime, span: int) -> list[MailboxDay]:
    first = day_key(now - timedelta(days=span - 1))
    return [day for day in days if day.day >= first]


def complaint_reading(days: Sequence[MailboxDay], now: datetime) -> Reading:
    """Complaints among the campaign emails of the last 30 days."""
    recent = _since(days, now, COMPLAINT_DAYS)
    sent = sum(day.campaign_sent for day in recent)
    complained = sum(day.complained for day in recent)
    return Reading(percent(complained, sent), complained, sent)


def placement_reading(days: Sequence[MailboxDay], now: datetime) -> Reading:
    """Warm-up emails found in the inbox among those found anywhere, last 7 days."""
    recent = _since(days, now, PLACEMENT_DAYS)
    inbox = sum(day.warmup_inbox for day in recent)
    found = sum(day.warmup_inbox + day.warmup_spam + day.warmup_other for day in recent)
    return Reading(percent(inbox, found), inbox, found)


def complaint_reason(reading: Reading, rules: BrakeRules) -> str:
    return (
        f"campaign sends stopped by the complaint brake: {reading.count} complaints in "
        f"{reading.of} emails over {COMPLAINT_DAYS} days ({reading.rate:g} %, above "
        f"{rules.complaint_rate_percent:g} %); warm-up goes on"
    )


def placement_reason(reading: Reading, rules: BrakeRules) -> str:
    return (
        f"campaign sends stopped by the placement brake: {reading.count} of {reading.of} "
        f"warm-up emails reached the inbox over {PLACEMENT_DAYS} days ({reading.rate:g} %, "
        f"under {rules.inbox_placement_percent:g} %); warm-up goes on"
    )
