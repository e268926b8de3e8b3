"""A mailbox's pace, decided as its emails leave (sending/pacing.py): a random gap between two
of its sends that any number of workers keep, and a daily limit counted on what left, with
follow-ups first when the day's room is short. Through a real SMTP server with an injected
clock, on every backend."""

from __future__ import annotations

import io
import itertools
from datetime import timedelta

import pytest
from pydantic import ValidationError

from mailramp.campaigns.service import CampaignService
from mailramp.config import Settings
from mailramp.errors import PlanError
from mailramp.mailboxes.models import DEFAULT_SEND_GAP, SendGap
from mailramp.sending.service import SendingService
from mailramp.tracking.models import TrackingStatus
from tests.sending.conftest import START, World

PEOPLE = ("ada", "bo", "cy", "di", "ed", "flo")
CSV = "email,first_name\n" + "".join(f"{n}@example.com,{n.title()}\n" for n in PEOPLE)
GAP = SendGap(120, 300)


def addresses(*names: str) -> list[str]:
    return [f"{name}@example.com" for name in names]


async def test_two_sends_of_a_mailbox_are_a_random_gap_apart_across_workers(
    world: World,
) -> None:
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=3)
    await world.make_due(*addresses(*PEOPLE))  # all six due at once: a worker catching up
    first, second = world.worker(send_gap=GAP), world.worker(send_gap=GAP)

    await first.tick()
    await second.tick()  # the same moment: the turn is held in the database
    assert len(world.smtp.inbox.messages) == 1
    for _ in range(180):  # an hour in 20-second passes, the two workers in turn
        world.clock.advance(seconds=20)
        await first.tick()
        await second.tick()
    await first.close()
    await second.close()

    arrived = sorted(str(m.message["To"]) for m in world.smtp.inbox.messages)
    assert arrived == sorted(addresses(*PEOPLE))
    records = await world.store.step_emails(campaign.campaign_id, 1)
    moments = sorted(r.sent_at for r in records if r.sent_at is not None)
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(moments)]
    assert len(gaps) == 5
    # Each gap drawn in [120, 300] s, seen by workers passing every 20 s.
    assert all(120 <= gap <= 320 for gap in gaps), gaps
    assert len({round(gap) for gap in gaps}) > 1, gaps  # random, not a fixed beat


async def test_the_daily_limit_counts_what_left_and_follow_ups_go_first(world: World) -> None:
    user, mailbox = await world.sender(daily_limit=10)
    campaign, _ = await world.campaign(
        user,
        mailbox,
        CSV,
        duration=24 * 6,
        campaign_steps=[{"delay_days": 1, "message": "Following up, {{first_name}}."}],
    )
    await world.send_first(*addresses("ada", "bo"))  # Monday 09:00: two first emails
    assert len(world.smtp.inbox.messages) == 2
    # The user lowers the limit; on Tuesday, more is due than it allows: Ada's and Bo's
    # follow-ups, and four first emails due for an hour longer.
    await world.mailboxes.update_mailbox(user.user_id, mailbox.mailbox_id, daily_limit=3)
    world.clock.now = START + timedelta(days=1, hours=1)
    await world.make_due(
        *addresses("cy", "di", "ed", "flo"), at=world.clock.now - timedelta(hours=1)
    )
    await world.make_due(*addresses("ada", "bo"))
    worker = world.worker()
    while await worker.tick():
        pass

    tuesday = [m.message for m in world.smtp.inbox.messages[2:]]
    assert len(tuesday) == 3  # the limit, counted as the emails left
    subjects = sorted(str(m["Subject"]) for m in tuesday)
    assert subjects[1:] == ["Re: Hello Ada", "Re: Hello Bo"]  # the follow-ups took their room
    assert subjects[0].startswith("Hello ")  # and one first email the rest
    waiting = [
        r
        for r in await world.store.step_emails(campaign.campaign_id, 1)
        if r.status is TrackingStatus.PENDING
    ]
    assert len(waiting) == 3
    wednesday = (START + timedelta(days=2)).replace(hour=0)  # midnight after the clock's Tuesday
    assert {r.scheduled_at for r in waiting} == {wednesday + timedelta(seconds=1)}

    world.clock.now = wednesday + timedelta(minutes=1)
    while await worker.tick():
        pass
    await worker.close()
    assert len(world.smtp.inbox.messages) == 8  # Wednesday's room: the three first emails
    records = await world.store.step_emails(campaign.campaign_id, 1)
    assert {r.status for r in records} == {TrackingStatus.SENT}


async def test_a_plan_holds_no_more_a_day_than_the_pace_lets_leave(world: World) -> None:
    campaigns = CampaignService(world.store, clock=world.clock, send_gap=GAP)
    sending = SendingService(world.store, clock=world.clock, send_gap=GAP)
    user, mailbox = await world.sender(daily_limit=500)
    campaign = await campaigns.create_campaign(
        user.user_id,
        mailbox_id=mailbox.mailbox_id,
        campaign_name="Paced",
        subject="Hello",
        message="A note from Acme.",
        duration=24,  # Monday 09:00-17:00 is its one sending day
        start_time=world.clock.now,
        sending_window={"days": [0, 1, 2, 3, 4], "start_hour": 9, "end_hour": 17},
    )

    def people(count: int) -> io.BytesIO:
        return io.BytesIO(
            ("email\n" + "".join(f"p{n}@example.com\n" for n in range(count))).encode()
        )

    # 8 hours at up to 5 minutes a send hold 96 emails, whatever the daily limit of 500.
    with pytest.raises(PlanError) as refused:
        await sending.import_recipients(user.user_id, campaign.campaign_id, people(97))
    assert refused.value.fit == 96
    assert "daily limit" not in refused.value.message  # raising it would not help
    assert refused.value.needed_duration_hours is not None
    report = await sending.import_recipients(user.user_id, campaign.campaign_id, people(96))
    assert report.accepted == 96

    worker = world.worker(send_gap=GAP)
    await world.run(worker, until=START.replace(hour=17, minute=30), step_minutes=1)
    await worker.close()
    records = await world.store.step_emails(campaign.campaign_id, 1)
    assert {r.status for r in records} == {TrackingStatus.SENT}  # none left for the window
    assert len(world.smtp.inbox.messages) == 96
    # Inside Monday's window — a send held back by the gap at most one longest gap after
    # 17:00 — at the worker's next pass (here, each minute).
    closes = START.replace(hour=17) + timedelta(seconds=GAP.high_seconds, minutes=1)
    late = sorted(r.sent_at for r in records if not (r.sent_at and START <= r.sent_at < closes))
    assert not late, late


def test_a_few_minutes_apart_unless_the_operator_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MAILRAMP_SEND_GAP_MIN_SECONDS", "MAILRAMP_SEND_GAP_MAX_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    gap = SendGap(settings.send_gap_min_seconds, settings.send_gap_max_seconds)
    assert gap == DEFAULT_SEND_GAP == SendGap(120, 300)
    monkeypatch.setenv("MAILRAMP_SEND_GAP_MIN_SECONDS", "400")
    with pytest.raises(ValidationError, match=r"send_gap_min_seconds \(400\) is more than"):
        Settings()
