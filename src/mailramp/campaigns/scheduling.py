"""Binding the planner to a campaign: its window, its mailbox's limit, the mailbox's other
campaigns, and now."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from mailramp.campaigns import planner
from mailramp.campaigns.models import Campaign
from mailramp.campaigns.repository import CampaignQueue, PlanFunction, Slot
from mailramp.mailboxes.models import Mailbox


async def plan_request(
    store: CampaignQueue, campaign: Campaign, mailbox: Mailbox, *, now: datetime, count: int
) -> planner.PlanRequest:
    """What a plan for `count` sends of `campaign` from `now` on must respect."""
    start = max(now, campaign.start_time)
    # From the start of that day: what the mailbox already sent today counts too.
    taken = await store.planned_times_for_mailbox(
        mailbox.id,
        exclude_campaign_id=campaign.campaign_id,
        start=planner.start_of_day(start, campaign.sending_window),
        end=campaign.end_time,
    )
    per_day = Counter(planner.day_of(moment, campaign.sending_window) for moment in taken)
    return planner.PlanRequest(
        start=start,
        end=campaign.end_time,
        count=count,
        daily_limit=mailbox.daily_limit,
        window=campaign.sending_window,
        already_planned=dict(per_day),
        seed=campaign.campaign_id,
    )


async def plan_function(
    store: CampaignQueue, campaign: Campaign, mailbox: Mailbox, *, now: datetime
) -> PlanFunction:
    """A PlanFunction for the store: times for however many records are pending."""
    base = await plan_request(store, campaign, mailbox, now=now, count=0)

    def slots(count: int) -> Sequence[Slot]:
        times = planner.plan(replace(base, count=count))
        return [Slot(mailbox.id, moment) for moment in times]

    return slots
