"""A person stopped, or marked as replied, by hand — sent through a real SMTP server with an
injected clock, on every backend: a stop recorded before a person's turn means no email,
and a reply marked by hand counts once."""

from __future__ import annotations

import pytest

from mailramp.errors import ConflictError, NotFoundError
from mailramp.tracking.models import EventType, TrackingStatus
from mailramp.tracking.repository import RecipientQuery
from tests.sending.conftest import World

CSV = "email,first_name\nalice@example.com,Alice\nbob@example.com,Bob\ncarol@example.com,Carol\n"


async def test_a_person_stopped_before_their_turn_is_never_emailed(world: World) -> None:
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(user, mailbox, CSV)
    bob = await world.tracking.find_recipient(user.user_id, campaign.campaign_id, "Bob@Example.com")

    stopped = await world.tracking.stop(user.user_id, campaign.campaign_id, bob.id)
    assert stopped.status == TrackingStatus.STOPPED
    again = await world.tracking.stop(user.user_id, campaign.campaign_id, bob.id)
    assert again.status == TrackingStatus.STOPPED
    _, events = await world.tracking.recipient_events(user.user_id, campaign.campaign_id, bob.id)
    assert [(e.type, e.details) for e in events] == [
        (EventType.QUEUED, {}),
        (EventType.STOPPED, {"source": "manual"}),
    ]

    await world.run(world.worker(), until=campaign.end_time)
    assert world.smtp.inbox.count_by_recipient() == {
        "alice@example.com": 1,
        "carol@example.com": 1,
    }
    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert (metrics.total_sent, metrics.total_replied) == (2, 0)
    finished = await world.campaigns.get_campaign(user.user_id, campaign.campaign_id)
    assert finished.status == "completed"

    # Stopping someone already emailed records the stop (no later step goes to them).
    alice = await world.tracking.find_recipient(
        user.user_id, campaign.campaign_id, "alice@example.com"
    )
    after = await world.tracking.stop(user.user_id, campaign.campaign_id, alice.id)
    assert after.status == TrackingStatus.SENT
    _, events = await world.tracking.recipient_events(user.user_id, campaign.campaign_id, alice.id)
    assert events[-1].type == EventType.STOPPED


async def test_a_reply_that_came_another_way_counts_once(world: World) -> None:
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(user, mailbox, CSV)
    carol = await world.tracking.find_recipient(
        user.user_id, campaign.campaign_id, "carol@example.com"
    )
    with pytest.raises(ConflictError) as refused:
        await world.tracking.mark_replied(user.user_id, campaign.campaign_id, carol.id)
    assert refused.value.field == "record_id"
    assert "carol@example.com has not been emailed (pending)" in refused.value.detail

    await world.run(world.worker(), until=campaign.end_time)
    marked = await world.tracking.mark_replied(user.user_id, campaign.campaign_id, carol.id)
    assert marked.replied_at == world.clock()
    await world.tracking.mark_replied(user.user_id, campaign.campaign_id, carol.id)
    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert (metrics.total_replied, metrics.reply_rate) == (1, 33.33)
    _, events = await world.tracking.recipient_events(user.user_id, campaign.campaign_id, carol.id)
    assert [e.type for e in events] == [
        EventType.QUEUED,
        EventType.SENT,
        EventType.REPLY,
        EventType.REPLY,
    ]
    assert events[2].details == {"source": "manual"}

    stranger = await world.accounts.create_user(user_name="Eve", login_id="eve-by-hand")
    with pytest.raises(NotFoundError):
        await world.tracking.mark_replied(stranger.user_id, campaign.campaign_id, carol.id)
    with pytest.raises(NotFoundError):
        await world.tracking.find_recipient(
            user.user_id, campaign.campaign_id, "nobody@example.com"
        )


async def test_a_reply_marked_by_hand_stops_the_colleagues_when_the_campaign_says_so(
    world: World,
) -> None:
    user, mailbox = await world.sender()
    rows = "email\nana@initech.example\nbo@initech.example\ncy@other.example\n"
    campaign, _ = await world.campaign(user, mailbox, rows, stop_company_on_reply=True)
    # Ana is emailed first; the others wait for their turn, a day later.
    await world.send_first("ana@initech.example")
    ana = await world.tracking.find_recipient(
        user.user_id, campaign.campaign_id, "ana@initech.example"
    )
    await world.tracking.mark_replied(user.user_id, campaign.campaign_id, ana.id)
    page = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    assert {r.recipient_email: r.status.value for r in page.items} == {
        "ana@initech.example": "sent",
        "bo@initech.example": "stopped",
        "cy@other.example": "pending",
    }
