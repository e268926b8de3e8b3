"""Sequences on every backend (SQLite, PostgreSQL, MongoDB): a person's emails one per
step, a follow-up due once the step before it left, a stop that ends everything not sent
yet in the same unit of work, counters that count people, and steps removed or added while
the campaign runs."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from mailramp.campaigns.models import Campaign
from mailramp.errors import PlanError, ValidationError
from mailramp.sending.models import NextStep, Outcome, SendResult
from mailramp.sending.repository import Lease
from mailramp.tracking.events import OPEN, REPLY
from mailramp.tracking.models import EmailEvent, EmailTracking, TrackingStatus
from mailramp.tracking.repository import EventChange
from tests.conftest import Services, make_campaign, make_mailbox, make_user

W, P, S = TrackingStatus.WAITING, TrackingStatus.PENDING, TrackingStatus.SENT
FOLLOW_UPS = [
    {"delay_days": 2, "message": "Any thoughts?"},
    {"delay_days": 3, "message": "Last note."},
]


async def three_steps(services: Services) -> tuple[str, Campaign]:
    user = await make_user(services)
    mailbox = await make_mailbox(services, user, daily_limit=100)
    campaign = await make_campaign(
        services, user, mailbox, duration=24 * 10, total_recipients=3, campaign_steps=FOLLOW_UPS
    )
    rows = "email\nalice@example.com\nbob@example.com\ncarol@example.com\n"
    report = await services.sending.import_recipients(
        user.user_id, campaign.campaign_id, io.BytesIO(rows.encode())
    )
    assert report.accepted == 3 and report.total_recipients == 3
    return user.user_id, campaign


async def statuses(services: Services, campaign: Campaign, email: str) -> list[tuple[int, str]]:
    emails = await services.store.sequence_emails(campaign.campaign_id, email)
    return [(e.step, e.status.value) for e in emails]


async def sent(services: Services, campaign: Campaign, email: EmailTracking) -> None:
    """A worker sends `email` when it is due (claimed, marked sending, reported sent), its
    next step due two days later."""
    store = services.store
    assert email.scheduled_at is not None and email.status is P
    now = email.scheduled_at
    await store.run_lifecycle(now=now)  # the campaign is active by then
    lease = Lease("test-worker", now, now + timedelta(minutes=5))
    claimed = {record.id for record in await store.claim_due(lease, limit=1000)}
    assert email.id in claimed
    await store.release_claims(worker_id="test-worker", record_ids=claimed - {email.id})
    assert await store.start_sending(lease, {email.id: f"<{email.id}@test>"}) == {email.id}
    after = campaign.step_after(email.step)
    due = NextStep(after.step, now + timedelta(days=2), email.mailbox_id) if after else None
    result = SendResult.of(email, Outcome.SENT, next_step=due)
    await store.record_results([result], now=now)


async def test_each_person_gets_one_email_per_step_and_a_follow_up_waits_for_the_one_before(
    services: Services,
) -> None:
    user_id, campaign = await three_steps(services)
    store = services.store
    assert await store.highest_step(campaign.campaign_id) == 3
    for step, status in ((1, P), (2, W), (3, W)):
        emails = await store.step_emails(campaign.campaign_id, step)
        assert sorted(e.recipient_email for e in emails) == [
            "alice@example.com",
            "bob@example.com",
            "carol@example.com",
        ]
        assert {e.status for e in emails} == {status}
        assert all(e.scheduled_at is not None for e in emails)
    schedule = await store.pending_schedule(user_id, campaign.campaign_id)
    assert (schedule.count, schedule.first_emails) == (9, 3)
    slots = await store.pending_slots(user_id, campaign.campaign_id)
    assert sorted(slot.step for slot in slots) == [1, 1, 1, 2, 2, 2, 3, 3, 3]

    alice = (await store.sequence_emails(campaign.campaign_id, "alice@example.com"))[0]
    await sent(services, campaign, alice)
    assert await statuses(services, campaign, "alice@example.com") == [
        (1, "sent"),
        (2, "pending"),
        (3, "waiting"),
    ]
    first, second, _ = await store.sequence_emails(campaign.campaign_id, "alice@example.com")
    assert first.sent_at is not None and second.scheduled_at is not None
    assert second.scheduled_at >= first.sent_at + timedelta(days=2)
    metrics = await services.metrics.get_campaign_metrics(campaign.campaign_id)
    assert metrics.total_sent == 1


async def test_a_reply_stops_every_email_not_sent_and_counters_count_people(
    services: Services,
) -> None:
    user_id, campaign = await three_steps(services)
    store = services.store
    bob = await store.sequence_emails(campaign.campaign_id, "bob@example.com")
    await sent(services, campaign, bob[0])
    bob = await store.sequence_emails(campaign.campaign_id, "bob@example.com")
    await sent(services, campaign, bob[1])
    bob = await store.sequence_emails(campaign.campaign_id, "bob@example.com")
    assert [e.status for e in bob] == [S, S, P]
    now = bob[1].scheduled_at or services.clock()
    # Bob opens both emails: one person opened.
    for email in bob[:2]:
        event = EmailEvent.about(email, OPEN.type, now, details={})
        await store.record_event(event, EventChange(firsts=OPEN.firsts_for(human=True)))
    # Then answers the second: his third email is stopped in the same unit of work.
    event = EmailEvent.about(bob[1], REPLY.type, now, details={})
    change = EventChange(firsts=REPLY.firsts_for(human=False), stops_sequence=True)
    assert await store.record_event(event, change) == {"total_replied": 1}
    assert await statuses(services, campaign, "bob@example.com") == [
        (1, "sent"),
        (2, "sent"),
        (3, "stopped"),
    ]
    metrics = await services.metrics.get_campaign_metrics(campaign.campaign_id)
    counted = (metrics.total_sent, metrics.total_opened, metrics.total_human_opened)
    assert (*counted, metrics.total_replied) == (1, 1, 1, 1)
    recomputed = await store.recompute_metrics(campaign.campaign_id, now=now)
    assert recomputed is not None
    assert (recomputed.total_sent, recomputed.total_opened, recomputed.total_replied) == (1, 1, 1)
    funnel = await store.counters_by_step(user_id, campaign.campaign_id)
    assert funnel[(1, 0)]["total_opened"] == 1 and funnel[(2, 0)]["total_opened"] == 1
    assert funnel[(2, 0)]["total_replied"] == 1 and funnel[(3, 0)]["total_sent"] == 0


async def test_steps_removed_and_added_while_the_campaign_runs(services: Services) -> None:
    user_id, campaign = await three_steps(services)
    store = services.store
    alice = await store.sequence_emails(campaign.campaign_id, "alice@example.com")
    await sent(services, campaign, alice[0])  # Alice's step 2 is due; the others wait
    # Step 2 goes: Alice's step 3 is due in its place; nobody keeps a step-2 email.
    kept = [{"step": 3, "delay_days": 3, "message": "Last note."}]
    changed = await services.sending.set_steps(user_id, campaign.campaign_id, campaign_steps=kept)
    assert changed.steps == [1, 3]
    assert await statuses(services, campaign, "alice@example.com") == [(1, "sent"), (3, "pending")]
    assert await statuses(services, campaign, "bob@example.com") == [(1, "pending"), (3, "waiting")]
    assert await store.step_emails(campaign.campaign_id, 2) == []
    # A new step joins every sequence still going, with a number never used.
    added = [*kept, {"delay_days": 1, "subject": "A new idea", "message": "Have you seen?"}]
    changed = await services.sending.set_steps(user_id, campaign.campaign_id, campaign_steps=added)
    assert changed.steps == [1, 3, 4]
    assert [f.subject for f in changed.campaign_steps] == ["", "A new idea"]
    assert await statuses(services, campaign, "alice@example.com") == [
        (1, "sent"),
        (3, "pending"),
        (4, "waiting"),
    ]
    assert await store.highest_step(campaign.campaign_id) == 4
    got = await services.campaigns.get_campaign(user_id, campaign.campaign_id)
    assert got.steps == [1, 3, 4]
    # A step whose emails could only be due after the campaign's end (10 days) is refused
    # with what would fit, and nothing changes.
    too_late = [*added, {"delay_days": 9, "message": "Much later."}]
    with pytest.raises(ValidationError) as refused:
        await services.sending.set_steps(user_id, campaign.campaign_id, campaign_steps=too_late)
    assert refused.value.field == "campaign_steps"
    assert "step 4 (9 days after step 3) would be due after the campaign ends" in str(
        refused.value.message
    )
    assert "for 1 person already written to; a duration of at least" in refused.value.message
    got = await services.campaigns.get_campaign(user_id, campaign.campaign_id)
    assert got.steps == [1, 3, 4] and await store.highest_step(campaign.campaign_id) == 4


async def test_steps_that_no_longer_fit_the_people_still_waiting_are_refused(
    services: Services,
) -> None:
    user_id, campaign = await three_steps(services)
    kept = [f.model_dump() for f in campaign.campaign_steps]
    longer = [*kept, {"delay_days": 8, "message": "A week later."}]
    with pytest.raises(PlanError) as refused:
        await services.sending.set_steps(user_id, campaign.campaign_id, campaign_steps=longer)
    assert refused.value.fit < 3 and refused.value.wanted == 3
    assert "a duration of at least" in refused.value.message
    got = await services.campaigns.get_campaign(user_id, campaign.campaign_id)
    assert got.steps == [1, 2, 3] and await services.store.highest_step(campaign.campaign_id) == 3
    # Steps that fit are planned again with everyone's sequence: the new step waits for
    # each person, inside the campaign.
    shorter = [*kept, {"delay_days": 1, "message": "One more."}]
    changed = await services.sending.set_steps(
        user_id, campaign.campaign_id, campaign_steps=shorter
    )
    assert changed.steps == [1, 2, 3, 4]
    fourth = await services.store.step_emails(campaign.campaign_id, 4)
    assert len(fourth) == 3 and {e.status for e in fourth} == {TrackingStatus.WAITING}
    assert all(e.scheduled_at and e.scheduled_at < changed.end_time for e in fourth)
