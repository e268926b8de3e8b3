"""Binding the planners to a campaign: its window, its mailboxes' limits and pace, the
mailboxes' other campaigns, and now.

A one-step campaign of one mailbox at its daily limit is spread by `planner` (its refusal
names the daily limit that would fit); one with follow-ups, several mailboxes, or a pace
that holds a mailbox's day below its limit (the gap between two sends) is planned whole
sequence by whole sequence with `sequencing` (its refusal names the duration or the number
of mailboxes that would fit).
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Protocol

from mailramp.campaigns import planner
from mailramp.campaigns.models import Campaign
from mailramp.campaigns.repository import CampaignQueue, PlanFunction, Slot
from mailramp.campaigns.sequencing import (
    PlannedRecipient,
    SenderCapacity,
    SequenceRequest,
    plan_sequences,
)
from mailramp.errors import NotFoundError
from mailramp.mailboxes.models import NO_GAP, Mailbox, SendGap
from mailramp.mailboxes.ramp import limits_ahead, ramp_days, ramp_of, warmup_ahead
from mailramp.mailboxes.repository import MailboxRepository


def planning_mailboxes(campaign: Campaign, mailboxes: Sequence[Mailbox | None]) -> list[Mailbox]:
    """Which of the campaign's mailboxes (given in its order, None for one gone) its waiting
    emails are planned on: those that can send now — the others' share moves to them — or,
    when none can, the first, whose emails then wait for it to be back."""
    known = [mailbox for mailbox in mailboxes if mailbox is not None]
    sending = [mailbox for mailbox in known if mailbox.can_send]
    return sending or known[:1]


async def campaign_mailboxes(store: MailboxRepository, campaign: Campaign) -> list[Mailbox]:
    """The campaign's mailboxes its waiting emails are planned on (planning_mailboxes)."""
    found = [await store.get_mailbox(campaign.user_id, m) for m in campaign.mailbox_ids]
    chosen = planning_mailboxes(campaign, found)
    if not chosen:
        raise NotFoundError("mailbox", campaign.mailbox_id)
    return chosen


@dataclass(frozen=True)
class CampaignPlan:
    """What a plan of the campaign's waiting emails must respect, from now on."""

    mailbox_ids: tuple[str, ...]
    first: planner.PlanRequest
    """The one-mailbox, one-step request (its count set by each call)."""
    sequences: SequenceRequest
    """The request for whole sequences across the mailboxes (its recipients set by each
    call): used with follow-ups, several mailboxes or recipients' own time zones."""
    follow_up_steps: tuple[int, ...] = ()
    """The numbers of the follow-ups each person gets after their first email."""
    paced: bool = False
    """The gap between two sends holds a mailbox's day below its daily limit: raising the
    limit would not help, so a refusal names the duration or mailboxes that would fit."""

    @property
    def simple(self) -> bool:
        """One mailbox and one step at its daily limit: the even spread of `planner` is the
        whole plan (its refusal names the daily limit that would fit)."""
        return len(self.mailbox_ids) == 1 and not self.follow_up_steps and not self.paced

    def check_fits(self, count: int) -> None:
        """PlanError (saying what would fit) unless `count` people's sequences fit."""
        if self.simple:
            planner.check_fits(replace(self.first, count=count))
        else:
            plan_sequences(replace(self.sequences, recipients=count))

    def slots(self, zones: Sequence[str | None]) -> list[Slot]:
        """The mailbox and moments of the sequence of each person whose time zone is given
        (None: the campaign's), in the same order (or PlanError)."""
        if self.simple and not any(zones):
            times = planner.plan(replace(self.first, count=len(zones)))
            return [Slot(self.mailbox_ids[0], moment) for moment in times]
        own = tuple(zones) if any(zones) else ()
        plan = plan_sequences(replace(self.sequences, recipients=len(zones), zones=own))
        by_zone: dict[str | None, deque[PlannedRecipient]] = defaultdict(deque)
        for planned in plan.recipients:
            by_zone[planned.zone].append(planned)
        slots = []
        for zone in zones:
            planned = by_zone[zone if own else None].popleft()
            steps = tuple(zip(self.follow_up_steps, planned.times[1:], strict=True))
            slots.append(Slot(self.mailbox_ids[planned.mailbox], planned.times[0], 1, steps))
        return slots


class PlanningStore(CampaignQueue, MailboxRepository, Protocol):
    """What planning reads: the queue, and the mailboxes' history (their ramps)."""


async def campaign_plan(
    store: PlanningStore,
    campaign: Campaign,
    mailboxes: Sequence[Mailbox],
    *,
    now: datetime,
    send_gap: SendGap = NO_GAP,
) -> CampaignPlan:
    """The plan binding for `campaign` sending from `mailboxes` (planning_mailboxes), each
    mailbox's day holding what its daily limit, its ramp and the gap between its sends
    allow."""
    start = max(now, campaign.start_time)
    window = campaign.sending_window
    open_hours = window.open_hours if window else 24
    capacities = []
    ramped = False
    for mailbox in mailboxes:
        taken = await _already_planned(store, campaign, mailbox.id, start)
        for day, held in (await _ramp_holds(store, mailbox, now, campaign.end_time)).items():
            taken[day] = taken.get(day, 0) + held
            ramped = True
        capacities.append(
            SenderCapacity(mailbox.id, send_gap.daily_cap(mailbox.daily_limit, open_hours), taken)
        )
    first = planner.PlanRequest(
        start=start,
        end=campaign.end_time,
        count=0,
        daily_limit=capacities[0].daily_limit,
        window=window,
        already_planned=capacities[0].already_planned,
        seed=campaign.campaign_id,
    )
    follow_ups = campaign.campaign_steps
    sequences = SequenceRequest(
        start=start,
        end=campaign.end_time,
        recipients=0,
        follow_ups=tuple(step.delay for step in follow_ups),
        mailboxes=tuple(capacities),
        window=window,
        seed=campaign.campaign_id,
    )
    steps = tuple(step.step for step in follow_ups)
    # A day held below the daily limit (the gap between sends, a ramp) is planned sequence
    # by sequence: the one-step planner's refusal would name a daily limit that is not the
    # one holding it.
    paced = ramped or any(
        c.daily_limit < m.daily_limit for c, m in zip(capacities, mailboxes, strict=True)
    )
    return CampaignPlan(tuple(c.mailbox_id for c in capacities), first, sequences, steps, paced)


async def _already_planned(
    store: CampaignQueue, campaign: Campaign, mailbox_id: str, start: datetime
) -> dict[date, int]:
    """The sends the mailbox's other campaigns hold per day, from the start of `start`'s
    day (what it already sent today counts too)."""
    taken = await store.planned_times_for_mailbox(
        mailbox_id,
        exclude_campaign_id=campaign.campaign_id,
        start=planner.start_of_day(start, campaign.sending_window),
        end=campaign.end_time,
    )
    return dict(Counter(planner.day_of(moment, campaign.sending_window) for moment in taken))


async def _ramp_holds(
    store: MailboxRepository, mailbox: Mailbox, now: datetime, end: datetime
) -> dict[date, int]:
    """What the mailbox's ramp holds back of its daily limit on each day from today until
    it reaches its target (nothing when it is already warm), as if each coming day were a
    good one — past `end` too, so a refusal's "would fit" duration counts with the ramp —
    and what its warm-up takes of each day (its emails count against the limit too)."""
    if ramp_of(mailbox) is None and not mailbox.warmup_enabled:
        return {}
    days = await store.mailbox_days(mailbox.id)
    span = ramp_days(mailbox, now, end)
    holds = {
        day: mailbox.daily_limit - limit
        for day, limit in limits_ahead(mailbox, days, now, span).items()
        if limit < mailbox.daily_limit
    }
    for day, volume in warmup_ahead(mailbox, days, now, span).items():
        holds[day] = min(holds.get(day, 0) + volume, mailbox.daily_limit)
    return holds


async def plan_function(
    store: PlanningStore,
    campaign: Campaign,
    mailboxes: Sequence[Mailbox],
    *,
    now: datetime,
    send_gap: SendGap = NO_GAP,
) -> PlanFunction:
    """A PlanFunction for the store: slots for the pending first emails, by time zone."""
    return (await campaign_plan(store, campaign, mailboxes, now=now, send_gap=send_gap)).slots
