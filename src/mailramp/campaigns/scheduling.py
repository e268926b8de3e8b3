"""Binding the planners to a campaign: its window, its mailboxes' limits, the mailboxes'
other campaigns, and now.

A campaign of one mailbox is spread by `planner` (its refusal names the daily limit that
would fit); one of several shares its recipients among them with `sequencing` (its refusal
names the number of mailboxes that would).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from mailramp.campaigns import planner
from mailramp.campaigns.models import Campaign
from mailramp.campaigns.repository import CampaignQueue, PlanFunction, Slot
from mailramp.campaigns.sequencing import SenderCapacity, SequenceRequest, plan_sequences
from mailramp.errors import NotFoundError
from mailramp.mailboxes.models import Mailbox
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
    """The one-mailbox request (its count set by each call)."""
    shared: SequenceRequest | None
    """The request across several mailboxes; None with one."""

    def check_fits(self, count: int) -> None:
        """PlanError (saying what would fit) unless `count` emails fit."""
        if self.shared is None:
            planner.check_fits(replace(self.first, count=count))
        else:
            plan_sequences(replace(self.shared, recipients=count))

    def slots(self, count: int) -> list[Slot]:
        """The mailbox and moment of `count` emails (or PlanError)."""
        if self.shared is None:
            times = planner.plan(replace(self.first, count=count))
            return [Slot(self.mailbox_ids[0], moment) for moment in times]
        plan = plan_sequences(replace(self.shared, recipients=count))
        return [Slot(self.mailbox_ids[p.mailbox], p.times[0]) for p in plan.recipients]


async def campaign_plan(
    store: CampaignQueue, campaign: Campaign, mailboxes: Sequence[Mailbox], *, now: datetime
) -> CampaignPlan:
    """The plan binding for `campaign` sending from `mailboxes` (planning_mailboxes)."""
    start = max(now, campaign.start_time)
    window = campaign.sending_window
    capacities = []
    for mailbox in mailboxes:
        capacities.append(
            SenderCapacity(
                mailbox.id,
                mailbox.daily_limit,
                await _already_planned(store, campaign, mailbox.id, start),
            )
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
    shared = None
    if len(capacities) > 1:
        shared = SequenceRequest(
            start=start,
            end=campaign.end_time,
            recipients=0,
            follow_ups=(),
            mailboxes=tuple(capacities),
            window=window,
            seed=campaign.campaign_id,
        )
    return CampaignPlan(tuple(c.mailbox_id for c in capacities), first, shared)


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


async def plan_function(
    store: CampaignQueue, campaign: Campaign, mailboxes: Sequence[Mailbox], *, now: datetime
) -> PlanFunction:
    """A PlanFunction for the store: slots for however many records are pending."""
    return (await campaign_plan(store, campaign, mailboxes, now=now)).slots
