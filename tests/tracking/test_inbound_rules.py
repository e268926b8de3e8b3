"""What the inbox poller does with what it classified: soft bounces that add up, bounces
matched by address within a window (and kept as unmatched outside it), and a message the
classifier fails on, which is skipped without losing the rest."""

from __future__ import annotations

import logging

import pytest

from mailramp.mailboxes.models import Mailbox
from mailramp.providers.registry import DefaultInboxes
from mailramp.tracking import inbox as inbox_module
from mailramp.tracking.inbound import Inbound
from mailramp.tracking.inbox import InboxPoller
from mailramp.tracking.models import EmailTracking, TrackingStatus
from mailramp.tracking.repository import RecipientQuery
from tests.sending.conftest import World
from tests.support.inbound_mail import exchange_bounce
from tests.tracking.test_inbound import _dsn
from tests.tracking.test_inbox import CSV


async def _sent(world: World) -> tuple[InboxPoller, Mailbox, dict[str, EmailTracking]]:
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=1)
    await world.run(world.worker(), until=campaign.end_time)
    page = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    records = {r.recipient_email.split("@")[0]: r for r in page.items}
    assert {r.status for r in records.values()} == {TrackingStatus.SENT}
    poller = InboxPoller(
        world.store, world.mailboxes, DefaultInboxes(allow_private_hosts=True), clock=world.clock
    )
    return poller, mailbox, records


def _soft_bounce(recipient: str, original_id: str) -> bytes:
    return (
        _dsn("failed", "4.2.2", "452 4.2.2 mailbox full")
        .replace(b"bob@example.com", recipient.encode())
        .replace(b"<orig-1@acme.com>", original_id.encode())
    )


async def test_three_soft_bounces_in_thirty_days_suppress_the_address(world: World) -> None:
    poller, mailbox, records = await _sent(world)
    bob, carol = records["bob"], records["carol"]
    for gap in (0, 10, 10):  # bob: three within 21 days
        world.clock.advance(days=gap)
        await poller.process(mailbox, _soft_bounce(bob.recipient_email, bob.message_id or ""))
    for gap in (0, 20, 20):  # carol: never three within 30 days
        world.clock.advance(days=gap)
        await poller.process(mailbox, _soft_bounce(carol.recipient_email, carol.message_id or ""))
    page = await world.suppression.list_suppressions(mailbox.user_id)
    assert [(s.email, s.reason.value) for s in page.items] == [("bob@example.com", "bounced")]
    detail = page.items[0].detail or ""
    assert detail.startswith("3 soft bounces in 30 days (the last: delivery status 4.2.2")
    metrics = await world.metrics.get_campaign_metrics(bob.campaign_id)
    assert metrics.total_bounced == 2  # each recipient once, however often it bounced


async def test_a_bounce_without_message_id_is_matched_by_address_for_fourteen_days(
    world: World,
) -> None:
    poller, mailbox, records = await _sent(world)
    world.clock.advance(days=13)
    assert (await poller.process(mailbox, exchange_bounce("bob@example.com"))).value == (
        "hard_bounce"
    )
    world.clock.advance(days=2)  # erin was mailed 15 days ago: too long for a guess
    assert (await poller.process(mailbox, exchange_bounce("erin@example.com"))).value == (
        "unrelated"
    )
    bob = await world.store.get_tracking(mailbox.user_id, records["bob"].id)
    erin = await world.store.get_tracking(mailbox.user_id, records["erin"].id)
    assert bob is not None and bob.status is TrackingStatus.BOUNCED
    assert erin is not None and erin.status is TrackingStatus.SENT
    unmatched = await world.tracking.list_unmatched(mailbox.user_id)
    assert [(u.recipient, u.reason, u.mailbox_id) for u in unmatched.items] == [
        ("erin@example.com", "user_unknown", mailbox.id)
    ]


async def test_a_message_the_classifier_fails_on_is_skipped_and_logged_once(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    poller, mailbox, records = await _sent(world)
    real = inbox_module.classify_inbound

    def failing_on_poison(raw: bytes) -> Inbound:
        if b"POISON" in raw:
            raise RecursionError("maximum recursion depth exceeded")
        return real(raw)

    monkeypatch.setattr(inbox_module, "classify_inbound", failing_on_poison)
    with caplog.at_level(logging.ERROR, logger="mailramp.tracking.inbox"):
        kinds = [
            await poller.process(mailbox, b"Subject: POISON\r\n\r\n" + b"x" * 100),
            await poller.process(mailbox, exchange_bounce("bob@example.com")),
        ]
    assert [kind.value for kind in kinds] == ["unrelated", "hard_bounce"]
    logged = [r for r in caplog.records if "could not be classified" in r.getMessage()]
    assert len(logged) == 1 and f"mailbox {mailbox.id}" in logged[0].getMessage()
    bob = await world.store.get_tracking(mailbox.user_id, records["bob"].id)
    assert bob is not None and bob.status is TrackingStatus.BOUNCED
