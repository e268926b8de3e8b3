"""What the campaigns domain needs from storage."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.kit.types import Page
from mailramp.metrics.models import CampaignMetrics


@dataclass(frozen=True)
class CampaignQuery:
    """Which of a user's campaigns a list shows: of these statuses (all if None), sending
    from this mailbox (any if None), one page of them."""

    statuses: Collection[CampaignStatus] | None = None
    mailbox_id: str | None = None
    offset: int = 0
    limit: int = 50


# (unit, its seconds, the longest spread told in it)
_PACE_UNITS = (("minute", 60, 2 * 3600), ("hour", 3600, 2 * 86400), ("day", 86400, float("inf")))


@dataclass(frozen=True)
class PendingSchedule:
    """A campaign's emails still waiting to be sent: how many, and when the first and the
    last of them are planned (None when none waits)."""

    count: int
    first: datetime | None = None
    last: datetime | None = None
    first_emails: int = 0
    """How many of them are first emails: the people not contacted yet."""

    def pace(self) -> str | None:
        """How fast they go out, in the unit their spread reads best in: "about 5 a
        minute" over a few minutes, "about 40 an hour" over hours, "about 300 a day" over
        days — or, when that would say less than one, how far apart they are ("about one
        every 2 hours"). None for fewer than two."""
        if self.count < 2 or self.first is None or self.last is None:
            return None
        span = max((self.last - self.first).total_seconds(), 1.0)
        unit, seconds, _ = next(unit for unit in _PACE_UNITS if span <= unit[2])
        rate = self.count * seconds / max(span, seconds)
        if rate >= 1:
            return f"about {_number(rate)} a{'n' if unit == 'hour' else ''} {unit}"
        apart = span / (self.count - 1)
        unit, seconds, _ = next(unit for unit in _PACE_UNITS if apart <= unit[2])
        count = apart / seconds
        return f"about one every {_number(count)} {unit}{'' if _number(count) == '1' else 's'}"


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}".removesuffix(".0")


class Slot(NamedTuple):
    """Where and when one waiting email goes: the mailbox that sends it, and its moment;
    which step it is; for a planned first email, the moment of each of the person's
    follow-ups as (step, moment)."""

    mailbox_id: str
    at: datetime
    step: int = 1
    follow_ups: tuple[tuple[int, datetime], ...] = ()


PlanFunction = Callable[[Sequence[str | None]], Sequence[Slot]]
"""Given the time zone of each pending first email of a campaign (None: the campaign's), in
import order, the mailbox and moment of each and of its follow-ups, in the same order (or
PlanError). The schedule sets both: a campaign moved to another mailbox before it started
sends its waiting emails from that one."""


class CampaignRepository(Protocol):
    """Campaigns, always scoped to their owner."""

    async def insert_campaign(self, campaign: Campaign, metrics: CampaignMetrics) -> Campaign:
        """Store a campaign and its `campaign_matrix` document in one unit of work: both or
        neither."""
        ...

    async def get_campaign(self, user_id: str, campaign_id: str) -> Campaign | None:
        """The user's campaign with this campaign_id."""
        ...

    async def get_campaign_unscoped(self, campaign_id: str) -> Campaign | None:
        """A campaign whoever owns it (worker, signed tracking requests, CLI)."""
        ...

    async def list_campaigns(self, user_id: str, query: CampaignQuery) -> Page[Campaign]:
        """The user's campaigns that `query` selects, newest first."""
        ...

    async def update_campaign(self, read: Campaign, changes: Mapping[str, Any]) -> Campaign | None:
        """Apply `changes` to the campaign `read` was read from, only if its status is still
        `read.status` (compare-and-set); None when it is missing or its status moved on."""
        ...


class CampaignQueue(Protocol):
    """What the campaign rules ask of the send queue when a campaign's window, mailbox or
    status changes (the queue itself is `sending.repository.SendingRepository`)."""

    async def pending_schedule(self, user_id: str, campaign_id: str) -> PendingSchedule:
        """How many of the campaign's emails wait to be sent (`pending`, or a follow-up
        `waiting`), when the first and last of them are planned, and how many of them are
        first emails."""
        ...

    async def pending_slots(self, user_id: str, campaign_id: str) -> list[Slot]:
        """The mailbox and moment of each of the user's campaign's waiting emails."""
        ...

    async def replan_pending(self, campaign: Campaign, *, plan: PlanFunction) -> int:
        """Reschedule the campaign's pending records with `plan`; returns how many."""
        ...

    async def planned_times_for_mailbox(
        self, mailbox_id: str, *, exclude_campaign_id: str, start: datetime, end: datetime
    ) -> list[datetime]:
        """The mailbox's sends in [start, end) that count against its daily limit: those
        other campaigns have planned (pending), and those any campaign already made (sent,
        bounced, in flight or uncertain)."""
        ...

    async def cancel_pending(self, campaign_id: str, *, now: datetime) -> int:
        """Mark the campaign's records that have not left `cancelled`."""
        ...
