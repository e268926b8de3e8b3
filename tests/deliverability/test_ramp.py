"""A new mailbox's ramp, through a real SMTP server with an injected clock: 10 emails on its
first day, 2 more after each day it sent without a brake, up to its daily limit; the plan
holds what the ramp holds back; a braked day does not grow it; an already warm mailbox
sends its daily limit from day one."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from mailramp.accounts.models import User
from mailramp.errors import PlanError
from mailramp.mailboxes.models import BrakeKind, Mailbox
from mailramp.mailboxes.ramp import day_key
from mailramp.tracking.models import EmailTracking
from tests.sending.conftest import START, World

PEOPLE = 60
CSV = "email\n" + "".join(f"p{n}@example.com\n" for n in range(PEOPLE))


def _sent_per_day(records: list[EmailTracking]) -> dict[str, int]:
    return dict(sorted(Counter(day_key(r.sent_at) for r in records if r.sent_at).items()))


async def _days(world: World, count: int) -> None:
    """`count` days pass: the worker sends through each, and the history is rolled up at
    its end (as the worker's upkeep does every few minutes)."""
    worker = world.worker()
    for _ in range(count):
        midnight = world.clock.now.replace(hour=0, minute=0, second=0) + timedelta(days=1)
        await world.run(worker, until=midnight, step_minutes=30)
        world.clock.now = midnight
        await world.deliverability.roll_up()
    await worker.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_new_mailbox_sends_ten_then_two_more_after_each_good_day(world: World) -> None:
    user, mailbox = await world.sender(daily_limit=16, already_warm=False)
    # 48 hours from Monday 09:00 reach three days, 10 + 12 + 14 of the 60: refused, with the
    # duration that fits the ramp.
    with pytest.raises(PlanError) as refused:
        await world.campaign(user, mailbox, CSV, duration=48)
    assert (refused.value.fit, refused.value.needed_duration_hours) == (36, 88)
    # Monday 09:00 to Friday midnight: 10 + 12 + 14 + 16 + 16 = 68 fit.
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=24 * 4 + 15)

    # The plan holds what the ramp holds back; its preview shows each day's limit.
    planned = await world.campaigns.pending_by_day(user.user_id, campaign.campaign_id)
    assert [load.daily_limit for load in planned] == [10, 12, 14, 16, 16]
    assert all(load.first_emails <= (load.daily_limit or 0) for load in planned)
    assert sum(load.first_emails for load in planned) == PEOPLE
    health = await world.deliverability.health(user.user_id, mailbox.mailbox_id)
    assert (health.limit_today, health.ramp) == (10, [10, 12, 14, 16])

    await _days(world, 5)

    records = await world.store.step_emails(campaign.campaign_id, 1)
    sent = _sent_per_day(records)
    assert sent == {load.day.isoformat(): load.first_emails for load in planned}
    assert len(world.smtp.inbox.messages) == PEOPLE
    history = await world.store.mailbox_days(mailbox.mailbox_id)
    assert [(day.day, day.daily_limit) for day in history] == [
        ((START.date() + timedelta(days=n)).isoformat(), limit)
        for n, limit in enumerate([10, 12, 14, 16, 16])
    ]
    assert [day.campaign_sent for day in history] == list(sent.values())
    health = await world.deliverability.health(user.user_id, mailbox.mailbox_id)
    assert (health.limit_today, health.ramp) == (16, [16])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_braked_day_does_not_grow_the_ramp(world: World) -> None:
    user, mailbox = await world.sender(daily_limit=30, already_warm=False)
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=24 * 7)
    await _days(world, 1)  # day 1: 10 sent, a good day
    assert await _limit(world, user.user_id, mailbox.mailbox_id) == 12

    # Day 2: a brake holds it from the morning; its owner resumes it in the evening.
    world.clock.advance(hours=9)
    braked = await world.mailboxes.brake(
        await _fresh(world, user.user_id, mailbox.mailbox_id), BrakeKind.COMPLAINTS, "a test"
    )
    await world.deliverability.roll_up()
    world.clock.advance(hours=10)
    await world.mailboxes.resume_sending(user.user_id, braked.mailbox_id, rate=0.0)
    await _days(world, 1)

    history = await world.store.mailbox_days(mailbox.mailbox_id)
    assert [(day.day, day.braked) for day in history][:2] == [
        (START.date().isoformat(), False),
        ((START.date() + timedelta(days=1)).isoformat(), True),
    ]
    # Day 3: still 12, not 14.
    assert await _limit(world, user.user_id, mailbox.mailbox_id) == 12
    assert campaign.status == "scheduled"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_already_warm_mailbox_sends_its_daily_limit_from_day_one(world: World) -> None:
    forty = "email\n" + "".join(f"p{n}@example.com\n" for n in range(40))
    user, warm = await world.sender(daily_limit=40, already_warm=True)
    _, new = await world.sender(daily_limit=40, already_warm=False)

    campaign, _ = await world.campaign(user, warm, forty, duration=15)  # Monday 09:00-24:00
    with pytest.raises(PlanError) as refused:
        await world.campaign(await _owner(world, new), new, forty, duration=15)

    planned = await world.campaigns.pending_by_day(user.user_id, campaign.campaign_id)
    assert [(load.first_emails, load.daily_limit) for load in planned] == [(40, 40)]
    health = await world.deliverability.health(user.user_id, warm.mailbox_id)
    assert (health.limit_today, health.ramp) == (40, [])
    assert refused.value.fit == 10


async def _owner(world: World, mailbox: Mailbox) -> User:
    return await world.accounts.get_user(mailbox.user_id)


async def _fresh(world: World, user_id: str, mailbox_id: str) -> Mailbox:
    return await world.mailboxes.get_mailbox(user_id, mailbox_id)


async def _limit(world: World, user_id: str, mailbox_id: str) -> int:
    return await world.mailboxes.limit_today(await _fresh(world, user_id, mailbox_id))
