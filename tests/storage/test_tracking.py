"""email_tracking records on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailramp.campaigns.models import Campaign
from mailramp.campaigns.repository import PendingSchedule
from mailramp.errors import DuplicateError
from mailramp.kit.ids import new_object_id
from mailramp.tracking.models import EmailTracking, TrackingStatus
from mailramp.tracking.repository import RecipientQuery
from tests.conftest import Services, make_campaign, make_mailbox, make_user


def record(campaign: Campaign, email: str, *, minutes: int, **fields: object) -> EmailTracking:
    now = campaign.created_at
    return EmailTracking.model_validate(
        {
            "_id": new_object_id(),
            "campaign_id": campaign.campaign_id,
            "user_id": campaign.user_id,
            "mailbox_id": campaign.mailbox_id,
            "recipient_email": email,
            "merge_variables": {"first_name": email.split("@")[0].title()},
            "scheduled_at": campaign.start_time + timedelta(minutes=minutes),
            "created_at": now,
            "updated_at": now,
            **fields,
        }
    )


async def _campaign(services: Services) -> Campaign:
    user = await make_user(services)
    return await make_campaign(services, user, await make_mailbox(services, user))


async def test_insert_get_list_and_count(services: Services) -> None:
    campaign = await _campaign(services)
    records = [
        record(campaign, "c@example.com", minutes=30),
        record(campaign, "a@example.com", minutes=10),
        record(
            campaign,
            "b@example.com",
            minutes=20,
            status=TrackingStatus.SENT,
            message_id="<x@mailramp>",
        ),
    ]
    assert await services.store.insert_tracking(records) == 3
    assert await services.store.insert_tracking([]) == 0

    got = await services.store.get_tracking(campaign.user_id, records[0].id)
    assert got == records[0]
    assert got is not None and got.merge_variables == {"first_name": "C"}

    page = await services.store.list_tracking(
        campaign.user_id, RecipientQuery(campaign.campaign_id, limit=2)
    )
    assert page.total == 3
    assert [r.recipient_email for r in page.items] == ["a@example.com", "b@example.com"]
    sent = await services.store.list_tracking(
        campaign.user_id, RecipientQuery(campaign.campaign_id, status=TrackingStatus.SENT)
    )
    assert [r.message_id for r in sent.items] == ["<x@mailramp>"]
    counts = await services.store.count_tracking_by_status(campaign.user_id, campaign.campaign_id)
    assert counts == {"pending": 2, "sent": 1}


async def test_a_duplicate_recipient_stores_none_of_the_batch(services: Services) -> None:
    campaign = await _campaign(services)
    await services.store.insert_tracking([record(campaign, "dup@example.com", minutes=1)])
    batch = [
        record(campaign, "new@example.com", minutes=2),
        record(campaign, "dup@example.com", minutes=3),
    ]
    with pytest.raises(DuplicateError) as caught:
        await services.store.insert_tracking(batch)
    assert caught.value.field == "recipient_email"
    page = await services.store.list_tracking(
        campaign.user_id, RecipientQuery(campaign.campaign_id)
    )
    assert [r.recipient_email for r in page.items] == ["dup@example.com"]


async def test_records_are_scoped_to_their_owner(services: Services) -> None:
    campaign = await _campaign(services)
    other = await make_user(services)
    mine = record(campaign, "x@example.com", minutes=1)
    await services.store.insert_tracking([mine])
    assert await services.store.get_tracking(other.id, mine.id) is None
    assert (
        await services.store.list_tracking(other.id, RecipientQuery(campaign.campaign_id))
    ).total == 0
    assert await services.store.count_tracking_by_status(other.id, campaign.campaign_id) == {}


async def test_the_pending_schedule_counts_only_what_waits(services: Services) -> None:
    campaign = await _campaign(services)
    store = services.store
    assert await store.pending_schedule(campaign.user_id, campaign.campaign_id) == (
        PendingSchedule(0)
    )
    await store.insert_tracking(
        [
            record(campaign, "a@example.com", minutes=30),
            record(campaign, "b@example.com", minutes=10),
            record(campaign, "c@example.com", minutes=50),
            record(campaign, "d@example.com", minutes=5, status=TrackingStatus.SENT),
        ]
    )
    schedule = await store.pending_schedule(campaign.user_id, campaign.campaign_id)
    assert schedule == PendingSchedule(
        3,
        campaign.start_time + timedelta(minutes=10),
        campaign.start_time + timedelta(minutes=50),
        first_emails=3,
    )
    stranger = await make_user(services)
    assert (await store.pending_schedule(stranger.id, campaign.campaign_id)).count == 0


async def test_recipients_are_searched_by_address_literally(services: Services) -> None:
    campaign = await _campaign(services)
    store = services.store
    await store.insert_tracking(
        [
            record(campaign, "ann.lee@example.com", minutes=1),
            record(campaign, "annie@example.org", minutes=2),
            record(campaign, "bob_x@example.com", minutes=3),
            record(campaign, "bobyx@example.com", minutes=4),
        ]
    )

    async def found(search: str) -> list[str]:
        query = RecipientQuery(campaign.campaign_id, search=search)
        page = await store.list_tracking(campaign.user_id, query)
        return [r.recipient_email for r in page.items]

    assert await found("ANN") == ["ann.lee@example.com", "annie@example.org"]
    # `_`, `.` and `%` are letters here, not wildcards.
    assert await found("bob_x") == ["bob_x@example.com"]
    assert await found("n.l") == ["ann.lee@example.com"]
    assert await found("%") == []
