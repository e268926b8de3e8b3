"""Bounces, a complaint and an out-of-office reply in the formats real servers send, read
from a real IMAP server (Dovecot on loopback) after a real campaign went out, on SQLite,
PostgreSQL and the MongoDB adapter: what the user then sees in the metrics, the
suppression list, the recipients' timelines and the unmatched list."""

from __future__ import annotations

import pytest

from mailramp.providers.registry import DefaultInboxes
from mailramp.tracking.inbox import InboxPoller
from mailramp.tracking.models import EventType, TrackingStatus
from mailramp.tracking.repository import RecipientQuery
from tests.sending.conftest import World
from tests.storage.conftest import database_url, store
from tests.support.dovecot import Dovecot
from tests.support.inbound_mail import (
    arf_complaint,
    exchange_bounce,
    german_out_of_office,
    qmail_bounce,
)
from tests.tracking.test_inbox import CSV, _append, reading_sender

__all__ = ["database_url", "store"]  # every backend, MongoDB's adapter included


@pytest.mark.usefixtures("database_url")
async def test_what_the_servers_send_back_lands_where_the_user_looks(
    world: World, dovecot: Dovecot
) -> None:
    user, mailbox = await reading_sender(world, dovecot)
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=1)
    await world.run(world.worker(), until=campaign.end_time)
    page = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    records = {r.recipient_email.split("@")[0]: r for r in page.items}
    assert {r.status for r in records.values()} == {TrackingStatus.SENT}

    _append(
        dovecot,
        qmail_bounce("alice@example.com", records["alice"].message_id or ""),
        exchange_bounce("bob@example.com"),
        arf_complaint("carol@example.com", records["carol"].message_id or ""),
        german_out_of_office("dave@example.com"),
        exchange_bounce("stranger@example.org"),  # never mailed from here: unmatched
    )
    poller = InboxPoller(
        world.store, world.mailboxes, DefaultInboxes(allow_private_hosts=True), clock=world.clock
    )
    assert await poller.poll_once() == {
        "hard_bounce": 2,
        "complaint": 1,
        "auto_reply": 1,
        "unrelated": 1,
    }

    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert (metrics.total_sent, metrics.total_bounced, metrics.total_delivered) == (5, 2, 3)
    assert (metrics.total_complained, metrics.complaint_rate) == (1, 33.33)
    assert (metrics.total_auto_replied, metrics.total_replied) == (1, 0)

    suppressed = await world.suppression.list_suppressions(user.user_id)
    reasons = {s.email: s.reason.value for s in suppressed.items}
    assert reasons == {
        "alice@example.com": "bounced",
        "bob@example.com": "bounced",
        "carol@example.com": "complained",
    }

    async def timeline(name: str) -> list[tuple[EventType, dict[str, object]]]:
        """What came back for the email (after its `queued` and `sent`)."""
        _, events = await world.tracking.recipient_events(
            user.user_id, campaign.campaign_id, records[name].id
        )
        assert [event.type for event in events[:2]] == [EventType.QUEUED, EventType.SENT]
        return [(event.type, event.details) for event in events[2:]]

    [(kind, alice)] = await timeline("alice")
    assert kind is EventType.BOUNCE
    assert (alice["bounce"], alice["status"], alice["reason"]) == ("hard", "5.1.1", "user_unknown")
    assert alice["reply_code"] == "550"
    [(kind, bob)] = await timeline("bob")
    assert (kind, bob["status"], bob["reason"]) == (EventType.BOUNCE, "5.1.1", "user_unknown")
    [(kind, carol)] = await timeline("carol")
    assert (kind, carol["feedback_type"]) == (EventType.COMPLAINT, "abuse")
    [(kind, dave)] = await timeline("dave")
    assert (kind, dave["subject"]) == (EventType.AUTO_REPLY, "Abwesenheitsnotiz: Hello")
    assert await timeline("erin") == []

    unmatched = await world.tracking.list_unmatched(user.user_id)
    assert [(u.kind, u.recipient, u.status) for u in unmatched.items] == [
        ("hard_bounce", "stranger@example.org", "5.1.1")
    ]
