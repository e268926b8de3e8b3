"""Campaigns sent for real through an SMTP server on loopback, on every backend, with an
injected clock (no sleeping)."""

from __future__ import annotations

from datetime import timedelta
from email.utils import parsedate_to_datetime

from mailramp.sending.models import EXPIRY_GRACE
from mailramp.sending.repository import Lease
from mailramp.tracking.models import TrackingStatus
from mailramp.tracking.repository import RecipientQuery
from tests.sending.conftest import World

CSV = """email,first_name,company
alice@example.com,Alice,Initech
bob@example.com,Bob,Globex
carol@example.com,,Umbrella
dave@example.com,Dave,Hooli
"""


async def test_every_recipient_gets_exactly_one_personalised_email(world: World) -> None:
    user, mailbox = await world.sender()
    campaign, report = await world.campaign(user, mailbox, CSV)
    assert (report.accepted, report.total_recipients) == (4, 4)

    await world.run(world.worker(), until=campaign.end_time)

    counts = world.smtp.inbox.count_by_recipient()
    assert counts == {
        "alice@example.com": 1,
        "bob@example.com": 1,
        "carol@example.com": 1,
        "dave@example.com": 1,
    }
    alice = world.smtp.inbox.to("alice@example.com")[0]
    carol = world.smtp.inbox.to("carol@example.com")[0]
    assert alice["Subject"] == "Hello Alice"
    assert carol["Subject"] == "Hello there"
    assert alice.get_content().startswith("Hi Alice,")
    assert alice["From"] == "Ann from Acme <ann@acme.com>"
    assert alice["To"] == "alice@example.com"
    sent_date = parsedate_to_datetime(alice["Date"])
    assert campaign.start_time <= sent_date < campaign.end_time

    records = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    by_email = {record.recipient_email: record for record in records.items}
    assert {record.status for record in records.items} == {TrackingStatus.SENT}
    assert alice["Message-ID"] == by_email["alice@example.com"].message_id
    assert alice["Message-ID"] == f"<{by_email['alice@example.com'].id}.mailramp@acme.com>"
    for record in records.items:
        assert record.sent_at is not None and record.scheduled_at is not None
        assert campaign.start_time <= record.scheduled_at < campaign.end_time
        assert record.sent_at >= record.scheduled_at

    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert (metrics.total_sent, metrics.total_delivered, metrics.total_bounced) == (4, 4, 0)
    finished = await world.campaigns.get_campaign(user.user_id, campaign.campaign_id)
    assert finished.status == "completed"
    used = await world.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id)
    assert used.last_used is not None


async def test_sends_are_spread_across_the_window_not_sent_early(world: World) -> None:
    user, mailbox = await world.sender()
    rows = "".join(f"r{n}@example.com,R{n}\n" for n in range(12))
    campaign, _ = await world.campaign(user, mailbox, "email,first_name\n" + rows, duration=3)
    worker = world.worker()
    await worker.tick()
    early = len(world.smtp.inbox.messages)
    assert early <= 1  # only what the plan put in the first moments
    world.clock.advance(minutes=90)
    while await worker.tick():
        pass
    halfway = len(world.smtp.inbox.messages)
    assert 4 <= halfway <= 8
    await world.run(worker, until=campaign.end_time)
    assert len(world.smtp.inbox.messages) == 12


async def test_a_451_then_250_gets_the_mail_on_retry(world: World) -> None:
    user, mailbox = await world.sender()
    world.smtp.inbox.rcpt_replies["bob@example.com"] = ["451 4.7.1 Greylisted, try again later"]
    campaign, _ = await world.campaign(user, mailbox, CSV)
    await world.run(world.worker(), until=campaign.end_time)
    assert world.smtp.inbox.count_by_recipient()["bob@example.com"] == 1
    records = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    bob = next(r for r in records.items if r.recipient_email == "bob@example.com")
    assert bob.status == TrackingStatus.SENT and bob.attempts == 2
    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert metrics.total_sent == 4 and metrics.total_bounced == 0


async def test_a_550_recipient_is_bounced_and_suppressed(world: World) -> None:
    user, mailbox = await world.sender()
    world.smtp.inbox.rcpt_replies["carol@example.com"] = ["550 5.1.1 No such user here!"]
    campaign, _ = await world.campaign(user, mailbox, CSV)
    await world.run(world.worker(), until=campaign.end_time)
    assert "carol@example.com" not in world.smtp.inbox.count_by_recipient()
    records = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    carol = next(r for r in records.items if r.recipient_email == "carol@example.com")
    assert carol.status == TrackingStatus.BOUNCED and carol.bounced_at is not None
    assert carol.last_error is not None and "550" in carol.last_error
    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert (metrics.total_sent, metrics.total_bounced, metrics.total_delivered) == (4, 1, 3)
    assert metrics.bounce_rate == 25.0
    assert await world.store.suppressed_among(user.id, ["carol@example.com"]) == {
        "carol@example.com"
    }
    # No later campaign of the same owner sends to the address again.
    _, report = await world.campaign(user, mailbox, CSV, campaign_name="Second")
    assert report.suppressed == 1 and report.accepted == 3


async def test_transient_failures_give_up_after_the_last_attempt(world: World) -> None:
    user, mailbox = await world.sender()
    world.smtp.inbox.rcpt_replies["dave@example.com"] = ["421 4.3.0 Try later!"]
    # Dave first: the first slot leaves hours for the retries' backoff within the window.
    rows = "email,first_name\ndave@example.com,Dave\nerin@example.com,Erin\n"
    campaign, _ = await world.campaign(user, mailbox, rows, duration=6)
    await world.run(world.worker(max_attempts=3), until=campaign.end_time, step_minutes=10)
    records = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    dave = next(r for r in records.items if r.recipient_email == "dave@example.com")
    assert dave.status == TrackingStatus.FAILED and dave.attempts == 3
    assert "gave up after 3 attempts" in (dave.last_error or "")


async def test_pause_stops_sending_resume_replans_cancel_marks_the_rest(world: World) -> None:
    user, mailbox = await world.sender()
    rows = "".join(f"p{n}@example.com,P{n}\n" for n in range(10))
    campaign, _ = await world.campaign(user, mailbox, "email,first_name\n" + rows, duration=10)
    worker = world.worker()
    world.clock.advance(hours=2)
    while await worker.tick():
        pass
    sent_before_pause = len(world.smtp.inbox.messages)
    assert 1 <= sent_before_pause <= 4

    await world.campaigns.pause(user.user_id, campaign.campaign_id)
    world.clock.advance(hours=4)
    while await worker.tick():
        pass
    assert len(world.smtp.inbox.messages) == sent_before_pause  # nothing while paused

    resumed = await world.campaigns.resume(user.user_id, campaign.campaign_id)
    assert resumed.status == "active"
    pending = await world.store.list_tracking(
        user.id, RecipientQuery(campaign.campaign_id, status=TrackingStatus.PENDING)
    )
    assert pending.total == 10 - sent_before_pause
    # Re-planned across what is left of the window: nothing scheduled in the past.
    assert all(
        r.scheduled_at is not None and r.scheduled_at >= world.clock.now for r in pending.items
    )
    assert all(r.scheduled_at < campaign.end_time for r in pending.items)  # type: ignore[operator]

    world.clock.advance(hours=1)
    while await worker.tick():
        pass
    sent_before_cancel = len(world.smtp.inbox.messages)
    assert sent_before_cancel > sent_before_pause
    await world.campaigns.cancel(user.user_id, campaign.campaign_id)
    await world.run(worker, until=campaign.end_time + timedelta(hours=1))
    assert len(world.smtp.inbox.messages) == sent_before_cancel
    counts = await world.sending.status_counts(user.user_id, campaign.campaign_id)
    assert counts["sent"] == sent_before_cancel
    assert counts["cancelled"] == 10 - sent_before_cancel
    assert counts["pending"] == 0


async def test_campaign_starts_by_itself_and_unsent_records_expire_at_end(world: World) -> None:
    user, mailbox = await world.sender(daily_limit=50)
    later = world.clock.now + timedelta(hours=1)
    campaign, _ = await world.campaign(user, mailbox, CSV, start_time=later, duration=1)
    worker = world.worker()
    await worker.tick()
    assert (
        await world.campaigns.get_campaign(user.user_id, campaign.campaign_id)
    ).status == "scheduled"
    world.clock.now = later
    await worker.tick()
    assert (
        await world.campaigns.get_campaign(user.user_id, campaign.campaign_id)
    ).status == "active"
    # The mailbox breaks, so nothing more is sent; after end_time and its grace the rest
    # expires.
    await world.mailboxes.set_status(
        user.user_id, mailbox.mailbox_id, "error", reason="paused by test"
    )
    world.clock.now = campaign.end_time
    await worker.tick()
    assert (
        await world.campaigns.get_campaign(user.user_id, campaign.campaign_id)
    ).status == "active"
    world.clock.now = campaign.end_time + EXPIRY_GRACE
    await worker.tick()
    final = await world.campaigns.get_campaign(user.user_id, campaign.campaign_id)
    assert final.status == "completed"
    counts = await world.sending.status_counts(user.user_id, campaign.campaign_id)
    assert counts["expired"] + counts["sent"] == 4 and counts["pending"] == 0


async def test_an_expired_sending_lease_becomes_uncertain_and_is_never_resent(world: World) -> None:
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=1)
    world.clock.advance(minutes=59)
    await world.store.run_lifecycle(now=world.clock.now)
    # A worker leases and marks records `sending`, then dies before reporting.
    claimed = await world.store.claim_due(
        Lease("doomed", world.clock.now, world.clock.now + timedelta(seconds=10)), limit=10
    )
    assert len(claimed) == 4
    marked = await world.store.start_sending(
        Lease("doomed", world.clock.now, world.clock.now + timedelta(seconds=10)),
        {r.id: f"<{r.id}@acme.com>" for r in claimed[:2]},
    )
    assert len(marked) == 2
    world.clock.advance(seconds=30)
    await world.run(world.worker(), until=campaign.end_time)
    counts = await world.sending.status_counts(user.user_id, campaign.campaign_id)
    assert counts["uncertain"] == 2 and counts["sent"] == 2
    assert len(world.smtp.inbox.messages) == 2  # the two uncertain ones were not resent
    # The user may choose to resend them.
    assert await world.sending.resend_uncertain(user.user_id, campaign.campaign_id) == 2


async def test_stop_finishes_in_flight_and_releases_the_rest(world: World) -> None:
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=1)
    world.clock.advance(minutes=59)
    worker = world.worker(in_flight_per_mailbox=2)
    original = worker._send_group
    calls = 0

    async def stop_after_first_group(*args: object, **kwargs: object) -> set[str]:
        nonlocal calls
        calls += 1
        started = await original(*args, **kwargs)  # type: ignore[arg-type]
        worker.stop()
        return started

    worker._send_group = stop_after_first_group  # type: ignore[method-assign]
    await worker.tick()
    assert calls == 1
    counts = await world.sending.status_counts(user.user_id, campaign.campaign_id)
    assert counts["sent"] == 2 and counts["pending"] == 2
    leased = await world.store.list_tracking(
        user.id, RecipientQuery(campaign.campaign_id, status=TrackingStatus.PENDING)
    )
    assert all(r.lease_owner is None for r in leased.items)


async def test_records_of_a_campaign_paused_after_the_claim_are_given_back_at_once(
    world: World,
) -> None:
    """Paused between the worker's claim and its send: nothing goes out, and the claimed
    records are released then, not held until the lease runs out (so a quick resume sends
    them at the next pass)."""
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=1)
    world.clock.advance(minutes=59)
    worker = world.worker(in_flight_per_mailbox=2)
    original = worker._send_group

    async def pause_first(*args: object, **kwargs: object) -> set[str]:
        if (await world.campaigns.get_campaign(user.user_id, campaign.campaign_id)).status != (
            "paused"
        ):
            await world.campaigns.pause(user.user_id, campaign.campaign_id)
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    worker._send_group = pause_first  # type: ignore[method-assign]
    assert await worker.tick() == 0  # 4 claimed, none tried: the pause came first
    assert world.smtp.inbox.messages == []
    pending = await world.store.list_tracking(
        user.id, RecipientQuery(campaign.campaign_id, status=TrackingStatus.PENDING)
    )
    assert pending.total == 4 and all(r.lease_owner is None for r in pending.items)

    worker._send_group = original  # type: ignore[method-assign]
    await world.campaigns.resume(user.user_id, campaign.campaign_id)
    for _ in range(120):  # resuming spreads them over what is left of the window
        while await worker.tick():
            pass
        world.clock.advance(minutes=1)
    assert len(world.smtp.inbox.messages) == 4


async def test_cancelling_again_finishes_a_cancel_cut_short(world: World) -> None:
    """A crash between cancel's two steps (status, then the queue) leaves records `pending`
    in a cancelled campaign: they are never claimed, and cancelling again finishes it."""
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=1)
    await world.campaigns.change_status(user.user_id, campaign.campaign_id, "cancelled")
    world.clock.advance(minutes=59)
    while await world.worker().tick():
        pass
    assert world.smtp.inbox.messages == []
    counts = await world.sending.status_counts(user.user_id, campaign.campaign_id)
    assert counts["pending"] == 4

    again = await world.campaigns.cancel(user.user_id, campaign.campaign_id)
    assert again.status == "cancelled"
    counts = await world.sending.status_counts(user.user_id, campaign.campaign_id)
    assert counts["pending"] == 0 and counts["cancelled"] == 4


async def test_launching_a_campaign_paused_before_its_start_starts_it_now(world: World) -> None:
    user, mailbox = await world.sender()
    later = world.clock.now + timedelta(hours=2)
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=1, start_time=later)
    await world.campaigns.pause(user.user_id, campaign.campaign_id)
    launched = await world.campaigns.launch(user.user_id, campaign.campaign_id)
    assert launched.status == "active" and launched.start_time == world.clock.now
    assert launched.end_time == world.clock.now + timedelta(hours=1)  # same length
    for _ in range(61):
        while await world.worker().tick():
            pass
        world.clock.advance(minutes=1)
    assert len(world.smtp.inbox.messages) == 4  # within the hour, not two hours later


async def test_loopback_smtp_host_is_refused_unless_allowed(world: World) -> None:
    from mailramp.mailboxes.models import NO_GAP
    from mailramp.providers.registry import DefaultProviders
    from mailramp.sending.worker import SendingWorker, WorkerSettings

    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=1)
    world.clock.advance(minutes=59)
    strict = SendingWorker(
        world.store,
        world.mailboxes,
        DefaultProviders(),
        settings=WorkerSettings(send_gap=NO_GAP),
        clock=world.clock,
    )
    await strict.tick()
    broken = await world.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id)
    assert broken.status == "error"
    assert "MAILRAMP_ALLOW_PRIVATE_HOSTS" in (broken.status_reason or "")
    counts = await world.sending.status_counts(user.user_id, campaign.campaign_id)
    assert counts["pending"] == 4 and world.smtp.inbox.messages == []


async def test_an_address_suppressed_after_import_is_not_sent_to(world: World) -> None:
    from mailramp.kit.ids import new_object_id
    from mailramp.suppression.models import Suppression, SuppressionReason

    user, mailbox = await world.sender()
    campaign, report = await world.campaign(user, mailbox, CSV)
    assert report.accepted == 4
    # Bob unsubscribed from another campaign after this one was imported.
    await world.store.add_suppression(
        Suppression(
            id=new_object_id(),
            user_id=user.id,
            email="bob@example.com",
            reason=SuppressionReason.UNSUBSCRIBED,
            created_at=world.clock(),
        )
    )
    await world.run(world.worker(), until=campaign.end_time)

    assert sorted(world.smtp.inbox.count_by_recipient()) == [
        "alice@example.com",
        "carol@example.com",
        "dave@example.com",
    ]
    records = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    bob = next(r for r in records.items if r.recipient_email == "bob@example.com")
    assert bob.status == TrackingStatus.SUPPRESSED and bob.sent_at is None
    assert bob.message_id is None and "suppression list" in (bob.last_error or "")
    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert (metrics.total_sent, metrics.total_delivered) == (3, 3)
    finished = await world.campaigns.get_campaign(user.user_id, campaign.campaign_id)
    assert finished.status == "completed"


async def test_a_refused_sender_stops_the_mailbox_not_the_recipients(world: World) -> None:
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(user, mailbox, CSV)
    world.smtp.inbox.mail_replies["ann@acme.com"] = "550 5.7.1 Account suspended"
    worker = world.worker()
    world.clock.now = campaign.end_time - timedelta(minutes=1)  # everything is due
    await worker.tick()
    await worker.close()

    broken = await world.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id)
    assert broken.status == "error"
    assert "refused to send as ann@acme.com: 550" in (broken.status_reason or "")
    records = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    assert {r.status for r in records.items} == {TrackingStatus.PENDING}
    assert (
        await world.store.suppressed_among(user.id, [r.recipient_email for r in records.items])
        == set()
    )
    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert (metrics.total_sent, metrics.total_bounced) == (0, 0)
    assert world.smtp.inbox.count_by_recipient() == {}


async def test_what_the_mailbox_sent_today_counts_against_its_daily_limit(world: World) -> None:
    user, mailbox = await world.sender(daily_limit=3)
    first, _ = await world.campaign(
        user, mailbox, "email\na@example.com\nb@example.com\nc@example.com\n"
    )
    await world.run(world.worker(), until=first.end_time)
    assert len(world.smtp.inbox.messages) == 3  # today's limit is used up
    # Later the same day, a second campaign whose window is mostly today: its sends must
    # all wait for tomorrow (the hour after midnight).
    second, report = await world.campaign(
        user,
        mailbox,
        "email\nd@example.com\ne@example.com\n",
        campaign_name="Same day",
        duration=14,
    )
    assert report.accepted == 2
    records = await world.store.list_tracking(user.id, RecipientQuery(second.campaign_id))
    today = world.clock().date()
    days = [r.scheduled_at.date() for r in records.items if r.scheduled_at is not None]
    assert len(days) == 2 and all(day > today for day in days), days


async def test_a_resume_that_no_longer_fits_changes_nothing(world: World) -> None:
    import pytest

    from mailramp.errors import PlanError

    user, mailbox = await world.sender(daily_limit=2)
    campaign, report = await world.campaign(
        user, mailbox, CSV, duration=30
    )  # Mon 09:00 → Tue 15:00
    assert report.accepted == 4
    paused = await world.campaigns.pause(user.user_id, campaign.campaign_id)
    assert paused.status == "paused"
    world.clock.now = campaign.start_time + timedelta(hours=25)  # Tue 10:00: room for 2
    with pytest.raises(PlanError, match="fit"):
        await world.campaigns.resume(user.user_id, campaign.campaign_id)
    still = await world.campaigns.get_campaign(user.user_id, campaign.campaign_id)
    assert still.status == "paused"


async def test_a_campaign_moved_to_another_mailbox_sends_its_waiting_emails_from_it(
    world: World,
) -> None:
    user, first = await world.sender()
    second = await world.mailboxes.create_mailbox(
        user.user_id,
        email="zed@acme.com",
        provider="smtp",
        smtp_host="127.0.0.1",
        smtp_port=world.smtp.port,
        smtp_security="plain",
        password="smtp-password",
    )
    world.smtp.inbox.accounts["zed@acme.com"] = "smtp-password"
    later = world.clock.now + timedelta(hours=1)
    campaign, _ = await world.campaign(user, first, CSV, start_time=later)
    await world.campaigns.update_campaign(
        user.user_id, campaign.campaign_id, mailbox_id=second.mailbox_id
    )
    # The first mailbox no longer sends anything of it: it can be unlinked at once.
    await world.mailboxes.unlink_mailbox(user.user_id, first.mailbox_id)

    await world.run(world.worker(), until=campaign.end_time + timedelta(hours=1))
    senders = {r.message["To"]: r.sender for r in world.smtp.inbox.messages}
    assert len(senders) == 4
    assert set(senders.values()) == {"zed@acme.com"}
    records = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    assert {record.mailbox_id for record in records.items} == {second.mailbox_id}
