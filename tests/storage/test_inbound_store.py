"""What the inbox poller asks of storage beyond Message-IDs, on every backend: the newest
email a mailbox sent to an address, soft bounces counted per address, and the bounces
that match nothing, kept and listed."""

from __future__ import annotations

from datetime import timedelta

from mailramp.kit.ids import new_object_id
from mailramp.tracking.events import HARD_BOUNCE, SOFT_BOUNCE
from mailramp.tracking.models import EmailEvent, EmailTracking, UnmatchedInbound
from mailramp.tracking.repository import EventChange
from tests.conftest import Services, make_campaign, make_mailbox, make_user
from tests.storage.test_events import NOW, _sent_records


async def _bounce(services: Services, record: EmailTracking, *, soft: bool, days_ago: int) -> None:
    kind = SOFT_BOUNCE if soft else HARD_BOUNCE
    event = EmailEvent.about(
        record,
        kind.type,
        NOW - timedelta(days=days_ago),
        details={"bounce": "soft" if soft else "hard", "status": "4.2.2" if soft else "5.1.1"},
    )
    await services.store.record_event(event, EventChange(firsts=kind.firsts_for(human=False)))


async def test_the_newest_email_a_mailbox_sent_to_an_address(services: Services) -> None:
    store = services.store
    older, other = await _sent_records(services, 2)
    # A second campaign of the same user and mailbox mails the same address later.
    user = await store.get_user(older.user_id)
    assert user is not None
    mailbox = await store.get_mailbox(user.id, older.mailbox_id)
    assert mailbox is not None
    later_campaign = await make_campaign(services, user, mailbox)
    newer = older.model_copy(
        update={
            "id": new_object_id(),
            "campaign_id": later_campaign.campaign_id,
            "sent_at": NOW + timedelta(minutes=5),
        }
    )
    await store.insert_tracking([newer])

    found = await store.find_latest_sent_to(
        older.mailbox_id, older.recipient_email.upper(), since=NOW - timedelta(days=14)
    )
    assert found is not None and found.id == newer.id
    # Nothing sent in the window, another mailbox, or an address never mailed: nothing.
    assert (
        await store.find_latest_sent_to(
            older.mailbox_id, older.recipient_email, since=NOW + timedelta(minutes=6)
        )
        is None
    )
    elsewhere = await make_mailbox(services, user, email="other@example.org")
    assert await store.find_latest_sent_to(elsewhere.id, other.recipient_email, since=NOW) is None
    nobody = "nobody@example.com"
    assert await store.find_latest_sent_to(older.mailbox_id, nobody, since=NOW) is None


async def test_soft_bounces_are_counted_per_owner_and_address(services: Services) -> None:
    store = services.store
    first, second = await _sent_records(services, 2)
    await _bounce(services, first, soft=True, days_ago=40)  # outside a 30-day window
    await _bounce(services, first, soft=True, days_ago=10)
    await _bounce(services, first, soft=True, days_ago=2)
    await _bounce(services, second, soft=False, days_ago=1)  # hard: not counted
    since = NOW - timedelta(days=30)
    assert await store.count_soft_bounces(first.user_id, first.recipient_email, since=since) == 2
    assert await store.count_soft_bounces(second.user_id, second.recipient_email, since=since) == 0
    stranger = await make_user(services)
    assert await store.count_soft_bounces(stranger.id, first.recipient_email, since=since) == 0


async def test_unmatched_bounces_are_kept_and_listed_newest_first(services: Services) -> None:
    store = services.store
    user = await make_user(services)
    mailbox = await make_mailbox(services, user)
    items = [
        UnmatchedInbound(
            id=new_object_id(),
            user_id=user.id,
            mailbox_id=mailbox.id,
            kind="hard_bounce",
            recipient=f"gone{n}@example.com",
            status="5.1.1",
            reason="user_unknown",
            sender="MAILER-DAEMON@mx.example.com",
            subject="Undeliverable: <b>hi</b>",
            message_id=f"<bounce{n}@mx.example.com>",
            details={"diagnostic": "550 5.1.1 no such user"},
            received_at=NOW + timedelta(minutes=n),
        )
        for n in range(3)
    ]
    for item in items:
        await store.add_unmatched(item)
    page = await store.list_unmatched(user.id, limit=2)
    assert page.total == 3
    assert [item.recipient for item in page.items] == ["gone2@example.com", "gone1@example.com"]
    assert page.items[0] == items[2]
    stranger = await make_user(services)
    assert (await store.list_unmatched(stranger.id)).total == 0
