"""campaign_matrix counters and rates on every backend."""

from __future__ import annotations

import asyncio

import pytest

from mailramp.errors import NotFoundError
from mailramp.kit.ids import new_campaign_id
from mailramp.metrics.models import percent
from tests.conftest import Services, make_campaign, make_mailbox, make_user


async def _campaign_id(services: Services) -> str:
    user = await make_user(services)
    return (await make_campaign(services, user, await make_mailbox(services, user))).campaign_id


async def test_counts_and_rates_follow_the_design(services: Services) -> None:
    campaign_id = await _campaign_id(services)
    await services.metrics.count(campaign_id, {"total_sent": 8})
    metrics = await services.metrics.count(
        campaign_id, {"total_bounced": 2, "total_opened": 3, "total_clicks": 1, "total_replied": 2}
    )
    assert metrics.total_sent == 8 and metrics.total_bounced == 2
    assert metrics.total_delivered == 6
    assert metrics.open_rate == 50.0
    assert metrics.click_rate == 16.67
    assert metrics.reply_rate == 33.33
    assert metrics.bounce_rate == 25.0
    assert metrics.last_updated >= metrics.created_at
    assert await services.metrics.get_campaign_metrics(campaign_id) == metrics


async def test_rates_are_zero_when_nothing_was_delivered(services: Services) -> None:
    campaign_id = await _campaign_id(services)
    metrics = await services.metrics.count(campaign_id, {"total_sent": 3, "total_bounced": 3})
    assert metrics.total_delivered == 0
    assert metrics.open_rate == metrics.click_rate == metrics.reply_rate == 0.0
    assert metrics.bounce_rate == 100.0
    assert percent(1, 0) == 0.0


async def test_concurrent_increments_are_not_lost(services: Services) -> None:
    campaign_id = await _campaign_id(services)
    await asyncio.gather(
        *(services.metrics.count(campaign_id, {"total_sent": 1}) for _ in range(25))
    )
    metrics = await services.metrics.get_campaign_metrics(campaign_id)
    assert metrics.total_sent == 25 and metrics.total_delivered == 25


async def test_unknown_counters_and_campaigns(services: Services) -> None:
    campaign_id = await _campaign_id(services)
    with pytest.raises(ValueError, match="total_delivered"):
        await services.store.increment_metrics(
            campaign_id, {"total_delivered": 1}, at=services.clock()
        )
    with pytest.raises(ValueError, match="open_rate"):
        await services.store.increment_metrics(campaign_id, {"open_rate": 1}, at=services.clock())
    missing = new_campaign_id()
    with pytest.raises(NotFoundError):
        await services.metrics.count(missing, {"total_sent": 1})
    with pytest.raises(NotFoundError):
        await services.metrics.get_campaign_metrics(missing)


async def test_a_list_page_reads_every_campaigns_metrics_at_once(services: Services) -> None:
    ann = await make_user(services)
    box = await make_mailbox(services, ann)
    first = await make_campaign(services, ann, box)
    second = await make_campaign(services, ann, box)
    await services.metrics.count(second.campaign_id, {"total_sent": 4, "total_opened": 1})
    bob = await make_user(services)
    bobs = await make_campaign(services, bob, await make_mailbox(services, bob))
    wanted = [first.campaign_id, second.campaign_id, bobs.campaign_id, new_campaign_id()]

    found = await services.metrics.metrics_of(ann.user_id, wanted)

    # Ann's two campaigns, not Bob's, and nothing for an id that does not exist.
    assert set(found) == {first.campaign_id, second.campaign_id}
    assert found[second.campaign_id].total_sent == 4
    assert found[second.campaign_id].open_rate == 25.0
    assert found[first.campaign_id].total_sent == 0
    assert await services.metrics.metrics_of(ann.user_id, []) == {}
