"""Campaigns on every backend: creation with metrics, edits, the state machine, scoping."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from itertools import product

import pytest

from mailramp.campaigns.models import TRANSITIONS, CampaignStatus
from mailramp.errors import (
    ConflictError,
    DuplicateError,
    InvalidTransitionError,
    NotEditableError,
    NotFoundError,
    ValidationError,
)
from mailramp.kit.ids import is_uuid4, new_campaign_id, new_object_id
from mailramp.metrics.models import CampaignMetrics
from tests.conftest import Services, make_campaign, make_mailbox, make_user


async def test_create_campaign_computes_end_time_and_creates_metrics(services: Services) -> None:
    user = await make_user(services)
    box = await make_mailbox(services, user)
    # The day after the services' clock, 09:30 at UTC+2.
    start = datetime(2027, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    assert start > services.clock()
    campaign = await services.campaigns.create_campaign(
        user.user_id,
        mailbox_id=box.mailbox_id,
        campaign_name="Q1 Outreach",
        subject="Hello",
        message="Email body",
        duration=36,
        start_time=start,
        total_recipients=100,
    )
    assert is_uuid4(campaign.campaign_id)
    assert campaign.start_time == datetime(2027, 3, 2, 7, 30, tzinfo=UTC)
    assert campaign.start_time.utcoffset() == timedelta(0)
    assert campaign.end_time == datetime(2027, 3, 3, 19, 30, tzinfo=UTC)
    assert campaign.status == "scheduled"
    assert campaign.created_by == user.id and campaign.mailbox_id == box.id
    assert campaign.total_recipients == 100
    assert await services.campaigns.get_campaign(user.user_id, campaign.campaign_id) == campaign

    metrics = await services.metrics.get_campaign_metrics(campaign.campaign_id, user_id=user.id)
    assert metrics.campaign_id == campaign.campaign_id
    assert metrics.user_id == user.id and metrics.mailbox_id == box.id
    assert metrics.total_sent == 0 and metrics.open_rate == 0.0


async def test_metrics_insert_failure_leaves_neither_document(services: Services) -> None:
    user = await make_user(services)
    box = await make_mailbox(services, user)
    existing = await make_campaign(services, user, box)
    taken = await services.store.get_metrics(user.id, existing.campaign_id)
    assert taken is not None
    fresh = existing.model_copy(
        update={"id": new_object_id(), "campaign_id": new_campaign_id(), "campaign_name": "Lost"}
    )
    # The metrics document reuses an existing `_id`, so its insert must fail.
    clashing = CampaignMetrics(
        id=taken.id,
        campaign_id=fresh.campaign_id,
        user_id=user.id,
        mailbox_id=box.id,
        created_at=fresh.created_at,
        last_updated=fresh.created_at,
    )
    with pytest.raises(DuplicateError):
        await services.store.insert_campaign(fresh, clashing)
    assert await services.store.get_campaign(user.id, fresh.campaign_id) is None
    assert await services.store.get_metrics_unscoped(fresh.campaign_id) is None
    assert (await services.campaigns.list_campaigns(user.user_id)).total == 1


async def test_mailbox_of_another_user_is_not_found_and_nothing_is_written(
    services: Services,
) -> None:
    alice = await make_user(services)
    bob = await make_user(services)
    bobs_box = await make_mailbox(services, bob)
    await make_mailbox(services, alice)
    with pytest.raises(NotFoundError) as caught:
        await make_campaign(services, alice, bobs_box)
    assert bobs_box.mailbox_id in str(caught.value)
    assert (await services.campaigns.list_campaigns(alice.user_id)).total == 0
    assert (await services.campaigns.list_campaigns(bob.user_id)).total == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"duration": 0}, "duration"),
        ({"duration": -5}, "duration"),
        ({"campaign_name": "  "}, "campaign_name"),
        ({"subject": ""}, "subject"),
        ({"message": ""}, "message"),
        ({"start_time": datetime(2027, 3, 2, 9, 0)}, "start_time"),  # naive
        ({"start_time": "tomorrow"}, "start_time"),
        # ends before the services' clock (2027-03-01 09:00 UTC)
        ({"start_time": datetime(2027, 2, 27, 9, 0, tzinfo=UTC), "duration": 24}, "start_time"),
        ({"total_recipients": -1}, "total_recipients"),
        ({"mailbox_id": "mailbox_id_string"}, "mailbox_id"),
    ],
)
async def test_bad_campaign_input_names_the_field_and_writes_nothing(
    services: Services, fields: dict[str, object], field: str
) -> None:
    user = await make_user(services)
    box = await make_mailbox(services, user)
    with pytest.raises(ValidationError) as caught:
        await make_campaign(services, user, box, **fields)
    assert caught.value.field == field
    assert (await services.campaigns.list_campaigns(user.user_id)).total == 0


async def test_naive_start_time_error_says_how_to_fix_it(services: Services) -> None:
    user = await make_user(services)
    box = await make_mailbox(services, user)
    with pytest.raises(ValidationError) as caught:
        await make_campaign(services, user, box, start_time=datetime(2027, 3, 2, 9, 0))
    assert "timezone-aware" in str(caught.value)


async def test_list_campaigns_filters_and_paginates(services: Services) -> None:
    user = await make_user(services)
    box = await make_mailbox(services, user)
    made = [await make_campaign(services, user, box) for _ in range(5)]
    await services.campaigns.pause(user.user_id, made[1].campaign_id)
    await services.campaigns.cancel(user.user_id, made[3].campaign_id)

    page = await services.campaigns.list_campaigns(user.user_id, offset=0, limit=2)
    assert page.total == 5 and page.limit == 2 and len(page.items) == 2
    assert [c.campaign_id for c in page.items] == [made[4].campaign_id, made[3].campaign_id]
    rest = await services.campaigns.list_campaigns(user.user_id, offset=2, limit=10)
    assert [c.campaign_id for c in rest.items] == [c.campaign_id for c in reversed(made[:3])]

    paused = await services.campaigns.list_campaigns(user.user_id, status="paused")
    assert [c.campaign_id for c in paused.items] == [made[1].campaign_id]
    scheduled = await services.campaigns.list_campaigns(user.user_id, status="scheduled")
    assert scheduled.total == 3
    with pytest.raises(ValidationError) as caught:
        await services.campaigns.list_campaigns(user.user_id, status="running")
    assert caught.value.field == "status"
    with pytest.raises(ValidationError):
        await services.campaigns.list_campaigns(user.user_id, limit=0)
    with pytest.raises(ValidationError):
        await services.campaigns.list_campaigns(user.user_id, offset=-1)


async def test_update_while_scheduled_recomputes_end_time(services: Services) -> None:
    user = await make_user(services)
    box = await make_mailbox(services, user)
    other_box = await make_mailbox(services, user)
    campaign = await make_campaign(services, user, box)
    start = services.clock() + timedelta(days=3, hours=-1)
    updated = await services.campaigns.update_campaign(
        user.user_id,
        campaign.campaign_id,
        start_time=start,
        duration=2.5,
        subject="New subject",
        mailbox_id=other_box.mailbox_id,
    )
    assert updated.end_time == start + timedelta(hours=2.5)
    assert updated.end_time == datetime(2027, 3, 4, 10, 30, tzinfo=UTC)
    assert updated.subject == "New subject" and updated.mailbox_id == other_box.id
    metrics = await services.metrics.get_campaign_metrics(campaign.campaign_id)
    assert metrics.mailbox_id == other_box.id
    with pytest.raises(ValidationError) as caught:
        await services.campaigns.update_campaign(user.user_id, campaign.campaign_id, duration=0)
    assert caught.value.field == "duration"
    with pytest.raises(ValidationError) as unknown_field:
        await services.campaigns.update_campaign(user.user_id, campaign.campaign_id, status="x")
    assert unknown_field.value.field == "status"

    await services.campaigns.change_status(user.user_id, campaign.campaign_id, "active")
    with pytest.raises(NotEditableError):
        await services.campaigns.update_campaign(user.user_id, campaign.campaign_id, subject="x")
    stored = await services.campaigns.get_campaign(user.user_id, campaign.campaign_id)
    assert stored.subject == "New subject"


LEGAL = [(source, target) for source, targets in TRANSITIONS.items() for target in sorted(targets)]
ILLEGAL = [
    (source, target)
    for source, target in product(CampaignStatus, CampaignStatus)
    if target not in TRANSITIONS[source]
]


async def _campaign_in(services: Services, status: CampaignStatus) -> tuple[str, str]:
    user = await make_user(services)
    box = await make_mailbox(services, user)
    campaign = await make_campaign(services, user, box)
    path = {
        CampaignStatus.SCHEDULED: [],
        CampaignStatus.ACTIVE: ["active"],
        CampaignStatus.PAUSED: ["paused"],
        CampaignStatus.COMPLETED: ["active", "completed"],
        CampaignStatus.CANCELLED: ["cancelled"],
    }[status]
    for step in path:
        await services.campaigns.change_status(user.user_id, campaign.campaign_id, step)
    return user.user_id, campaign.campaign_id


def test_the_state_machine_is_the_designed_one() -> None:
    assert len(LEGAL) == 9 and len(ILLEGAL) == 16
    assert TRANSITIONS[CampaignStatus.COMPLETED] == frozenset()
    assert TRANSITIONS[CampaignStatus.CANCELLED] == frozenset()


@pytest.mark.parametrize(("source", "target"), LEGAL, ids=[f"{s}->{t}" for s, t in LEGAL])
async def test_every_legal_transition_is_applied(
    services: Services, source: CampaignStatus, target: CampaignStatus
) -> None:
    user_id, campaign_id = await _campaign_in(services, source)
    changed = await services.campaigns.change_status(user_id, campaign_id, target)
    assert changed.status == target
    assert (await services.campaigns.get_campaign(user_id, campaign_id)).status == target


@pytest.mark.parametrize(("source", "target"), ILLEGAL, ids=[f"{s}->{t}" for s, t in ILLEGAL])
async def test_every_illegal_transition_is_refused(
    services: Services, source: CampaignStatus, target: CampaignStatus
) -> None:
    user_id, campaign_id = await _campaign_in(services, source)
    with pytest.raises(InvalidTransitionError) as caught:
        await services.campaigns.change_status(user_id, campaign_id, target)
    assert f"from '{source}' to '{target}'" in str(caught.value)
    assert (await services.campaigns.get_campaign(user_id, campaign_id)).status == source


async def test_unknown_status_is_a_validation_error(services: Services) -> None:
    user_id, campaign_id = await _campaign_in(services, CampaignStatus.SCHEDULED)
    with pytest.raises(ValidationError) as caught:
        await services.campaigns.change_status(user_id, campaign_id, "archived")
    assert caught.value.field == "status" and "'cancelled'" in str(caught.value)


async def test_resume_goes_back_to_scheduled_before_start_and_active_after(
    services: Services,
) -> None:
    user = await make_user(services)
    box = await make_mailbox(services, user)
    future = await make_campaign(services, user, box)
    past = await make_campaign(
        services, user, box, start_time=services.clock() - timedelta(hours=1)
    )
    for campaign in (future, past):
        await services.campaigns.pause(user.user_id, campaign.campaign_id)
    resumed_future = await services.campaigns.resume(user.user_id, future.campaign_id)
    resumed_past = await services.campaigns.resume(user.user_id, past.campaign_id)
    assert resumed_future.status == "scheduled"
    assert resumed_past.status == "active"


async def test_user_b_cannot_read_change_or_list_user_a_campaign(services: Services) -> None:
    alice = await make_user(services)
    bob = await make_user(services)
    campaign = await make_campaign(services, alice, await make_mailbox(services, alice))
    await make_campaign(services, bob, await make_mailbox(services, bob))
    attempts = [
        services.campaigns.get_campaign(bob.user_id, campaign.campaign_id),
        services.campaigns.update_campaign(bob.user_id, campaign.campaign_id, subject="pwned"),
        services.campaigns.change_status(bob.user_id, campaign.campaign_id, "cancelled"),
        services.campaigns.pause(bob.user_id, campaign.campaign_id),
        services.metrics.get_campaign_metrics(campaign.campaign_id, user_id=bob.user_id),
    ]
    for attempt in attempts:
        with pytest.raises(NotFoundError):
            await attempt
    listed = await services.campaigns.list_campaigns(bob.user_id)
    assert listed.total == 1 and campaign.campaign_id not in [c.campaign_id for c in listed.items]
    assert await services.campaigns.get_campaign(alice.user_id, campaign.campaign_id) == campaign


async def test_campaign_needs_an_active_user(services: Services) -> None:
    user = await make_user(services)
    box = await make_mailbox(services, user)
    await services.accounts.deactivate_user(user.user_id)
    with pytest.raises(ConflictError):
        await make_campaign(services, user, box)


async def test_a_campaigns_mailboxes_are_stored_in_order_and_found_by_any_of_them(
    services: Services,
) -> None:
    user = await make_user(services)
    first, second, third = [await make_mailbox(services, user) for _ in range(3)]
    campaign = await make_campaign(
        services,
        user,
        first,
        mailbox_ids=[first.mailbox_id, second.mailbox_id],
        variants=[{"subject": "Other {{x|y}}", "message": "Words"}],
    )
    stored = await services.campaigns.get_campaign(user.user_id, campaign.campaign_id)
    assert stored.mailbox_ids == [first.mailbox_id, second.mailbox_id]
    assert [(v.subject, v.message) for v in stored.wordings[1:]] == [("Other {{x|y}}", "Words")]
    single = await make_campaign(services, user, third)
    assert single.mailbox_ids == [third.mailbox_id]
    for mailbox, expected in ((first, 1), (second, 1), (third, 1)):
        total, _ = await services.campaigns.running_on_mailbox(
            user.user_id, mailbox.mailbox_id, limit=5
        )
        assert total == expected, mailbox.email
    # A new first mailbox takes the first place; the others stay, once each.
    moved = await services.campaigns.update_campaign(
        user.user_id, campaign.campaign_id, mailbox_id=second.mailbox_id
    )
    assert moved.mailbox_ids == [second.mailbox_id]
    total, _ = await services.campaigns.running_on_mailbox(user.user_id, first.mailbox_id, limit=5)
    assert total == 0


async def test_waiting_emails_per_day_and_figures_per_variant_on_every_backend(
    services: Services,
) -> None:
    user = await make_user(services)
    mailbox = await make_mailbox(services, user, daily_limit=100)
    campaign = await make_campaign(
        services, user, mailbox, variants=[{"subject": "Other", "message": "Other words"}]
    )
    rows = "email\n" + "".join(f"p{n}@example.com\n" for n in range(5))
    report = await services.sending.import_recipients(
        user.user_id, campaign.campaign_id, io.BytesIO(rows.encode())
    )
    assert report.accepted == 5
    slots = await services.store.pending_slots(user.user_id, campaign.campaign_id)
    assert len(slots) == 5 and {slot.mailbox_id for slot in slots} == {mailbox.mailbox_id}
    assert all(campaign.start_time <= slot.at < campaign.end_time for slot in slots)
    by_day = await services.campaigns.pending_by_day(user.user_id, campaign.campaign_id)
    assert sum(load.first_emails for load in by_day) == 5
    assert {load.mailbox_id for load in by_day} == {mailbox.mailbox_id}
    figures = await services.campaigns.variant_figures(user.user_id, campaign.campaign_id)
    assert [row.letter for row in figures] == ["A", "B"]
    counted = await services.store.counters_by_step(user.user_id, campaign.campaign_id)
    assert set(counted) == {(1, 0), (1, 1)} and all(c["total_sent"] == 0 for c in counted.values())
    stranger = await make_user(services)
    assert await services.store.pending_slots(stranger.user_id, campaign.campaign_id) == []
    assert await services.store.counters_by_step(stranger.user_id, campaign.campaign_id) == {}
