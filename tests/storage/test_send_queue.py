"""The send queue's Store methods on every backend: leases, outcomes, lifecycle, suppression."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.kit.ids import new_object_id
from mailramp.sending.models import EXPIRY_GRACE, Outcome, SendResult
from mailramp.sending.repository import Lease
from mailramp.suppression.models import Suppression, SuppressionReason
from mailramp.tracking.models import EmailTracking, TrackingStatus
from mailramp.tracking.repository import RecipientQuery
from tests.conftest import Services, make_campaign, make_mailbox, make_user
from tests.support.clock import MONDAY_MORNING

NOW = MONDAY_MORNING  # where the services' clock stands (tests/conftest.py)


def _record(campaign: Campaign, n: int, *, minutes: int = 0) -> EmailTracking:
    return EmailTracking(
        id=new_object_id(),
        campaign_id=campaign.campaign_id,
        user_id=campaign.user_id,
        mailbox_id=campaign.mailbox_id,
        recipient_email=f"q{n}@example.com",
        scheduled_at=NOW - timedelta(minutes=30) + timedelta(minutes=minutes),
        created_at=NOW,
        updated_at=NOW,
    )


async def _active_campaign(services: Services, count: int) -> tuple[Campaign, list[EmailTracking]]:
    user = await make_user(services)
    mailbox = await make_mailbox(services, user)
    campaign = await make_campaign(
        services, user, mailbox, start_time=NOW - timedelta(hours=1), duration=5
    )
    records = [_record(campaign, n) for n in range(count)]
    await services.store.insert_tracking(records)
    report = await services.store.run_lifecycle(now=NOW)
    assert report.activated >= 1
    return campaign, records


async def test_concurrent_claims_are_disjoint_and_leases_hold(services: Services) -> None:
    store = services.store
    _, records = await _active_campaign(services, 30)
    lease = NOW + timedelta(minutes=2)
    claims = await asyncio.gather(
        *(store.claim_due(Lease(f"w{n}", NOW, lease), limit=10) for n in range(4))
    )
    ids = [record.id for claim in claims for record in claim]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert await store.claim_due(Lease("late", NOW, lease), limit=10) == []
    # Expired leases of records never marked `sending` are simply claimed again.
    later = NOW + timedelta(minutes=3)
    again = await store.claim_due(Lease("late", later, later), limit=100)
    assert len(again) == 30
    assert {record.lease_owner for record in again} == {"late"}
    assert await store.release_claims(worker_id="late", record_ids=[again[0].id]) == 1
    assert await store.release_claims(worker_id="late") == 29
    assert len(records) == 30


async def test_only_active_campaigns_on_sendable_mailboxes_are_claimed(services: Services) -> None:
    store = services.store
    campaign, _ = await _active_campaign(services, 3)
    await services.campaigns.pause(campaign.user_id, campaign.campaign_id)
    lease = NOW + timedelta(minutes=2)
    assert await store.claim_due(Lease("w", NOW, lease), limit=10) == []
    paused = campaign.model_copy(update={"status": CampaignStatus.PAUSED})
    await services.store.update_campaign(paused, {"status": "active"})
    await services.mailboxes.set_status(campaign.user_id, campaign.mailbox_id, "error", reason="x")
    assert await store.claim_due(Lease("w", NOW, lease), limit=10) == []


async def test_start_sending_needs_the_lease_and_an_active_campaign(services: Services) -> None:
    store = services.store
    campaign, _ = await _active_campaign(services, 4)
    lease = NOW + timedelta(minutes=2)
    claimed = await store.claim_due(Lease("w1", NOW, lease), limit=4)
    ids = {record.id: f"<{record.id}@example.com>" for record in claimed}
    assert await store.start_sending(Lease("w2", NOW, lease), ids) == set()
    first_two = dict(list(ids.items())[:2])
    assert await store.start_sending(Lease("w1", NOW, lease), first_two) == set(first_two)
    await services.campaigns.pause(campaign.user_id, campaign.campaign_id)
    rest = dict(list(ids.items())[2:])
    assert await store.start_sending(Lease("w1", NOW, lease), rest) == set()
    sending = await store.list_tracking(
        campaign.user_id, RecipientQuery(campaign.campaign_id, status=TrackingStatus.SENDING)
    )
    assert {r.message_id for r in sending.items} == set(first_two.values())
    assert all(r.attempts == 1 for r in sending.items)


async def test_outcomes_are_stored_counted_once_and_bounces_suppressed(services: Services) -> None:
    store = services.store
    campaign, _ = await _active_campaign(services, 5)
    lease = NOW + timedelta(minutes=2)
    claimed = await store.claim_due(Lease("w", NOW, lease), limit=5)
    await store.start_sending(Lease("w", NOW, lease), {r.id: f"<{r.id}@x>" for r in claimed})
    outcomes = [Outcome.SENT, Outcome.SENT, Outcome.BOUNCED, Outcome.RETRY, Outcome.UNCERTAIN]
    results = [
        SendResult(
            record_id=record.id,
            campaign_id=record.campaign_id,
            user_id=record.user_id,
            recipient_email=record.recipient_email,
            outcome=outcome,
            error=None if outcome is Outcome.SENT else f"{outcome} reason",
            retry_at=NOW + timedelta(minutes=5) if outcome is Outcome.RETRY else None,
        )
        for record, outcome in zip(claimed, outcomes, strict=True)
    ]
    await store.record_results(results, now=NOW)
    await store.record_results(results[:3], now=NOW)  # a repeated report changes nothing
    counts = await store.count_tracking_by_status(campaign.user_id, campaign.campaign_id)
    assert counts == {"sent": 2, "bounced": 1, "pending": 1, "uncertain": 1}
    metrics = await store.get_metrics(campaign.user_id, campaign.campaign_id)
    assert metrics is not None
    assert (metrics.total_sent, metrics.total_bounced, metrics.total_delivered) == (3, 1, 2)
    assert metrics.bounce_rate == 33.33
    assert await store.suppressed_among(campaign.user_id, [claimed[2].recipient_email]) == {
        claimed[2].recipient_email
    }
    retried = await store.get_tracking(campaign.user_id, claimed[3].id)
    assert retried is not None and retried.scheduled_at == NOW + timedelta(minutes=5)
    assert retried.lease_owner is None and retried.last_error == "retry reason"


async def test_a_sent_record_stores_the_message_id_the_provider_used(services: Services) -> None:
    store = services.store
    campaign, _ = await _active_campaign(services, 3)
    lease = NOW + timedelta(minutes=2)
    claimed = await store.claim_due(Lease("w", NOW, lease), limit=3)
    ours = {r.id: f"<{r.id}@x>" for r in claimed}
    await store.start_sending(Lease("w", NOW, lease), ours)
    # One message went out under the provider's own id (Gmail's); the others under ours.
    results = [
        SendResult(
            record_id=record.id,
            campaign_id=record.campaign_id,
            user_id=record.user_id,
            recipient_email=record.recipient_email,
            outcome=Outcome.SENT,
            message_id="<CA+1@mail.gmail.com>" if n == 1 else None,
        )
        for n, record in enumerate(claimed)
    ]
    await store.record_results(results, now=NOW)
    stored = {
        r.id: r.message_id
        for r in (
            await store.list_tracking(campaign.user_id, RecipientQuery(campaign.campaign_id))
        ).items
    }
    assert stored == ours | {claimed[1].id: "<CA+1@mail.gmail.com>"}
    metrics = await store.get_metrics(campaign.user_id, campaign.campaign_id)
    assert metrics is not None and metrics.total_sent == 3


async def test_lifecycle_expires_completes_and_turns_stale_sends_uncertain(
    services: Services,
) -> None:
    store = services.store
    campaign, _ = await _active_campaign(services, 3)
    lease = NOW + timedelta(minutes=2)
    claimed = await store.claim_due(Lease("w", NOW, lease), limit=1)
    await store.start_sending(Lease("w", NOW, lease), {claimed[0].id: "<a@x>"})
    report = await store.run_lifecycle(now=NOW + timedelta(minutes=3))
    assert report.uncertain_records == 1 and report.completed == 0
    # At end_time, what was due inside the window may still go out for a grace period.
    report = await store.run_lifecycle(now=campaign.end_time)
    assert report.expired_records == 0 and report.completed == 0
    report = await store.run_lifecycle(now=campaign.end_time + EXPIRY_GRACE)
    assert report.expired_records == 2 and report.completed == 1
    stored = await store.get_campaign_unscoped(campaign.campaign_id)
    assert stored is not None and stored.status == "completed"


async def test_planned_times_and_unscoped_lookups(services: Services) -> None:
    store = services.store
    campaign, records = await _active_campaign(services, 2)
    other_campaign = await make_campaign(
        services,
        await services.accounts.get_user(campaign.user_id),
        await services.mailboxes.get_mailbox(campaign.user_id, campaign.mailbox_id),
    )
    times = await store.planned_times_for_mailbox(
        campaign.mailbox_id,
        exclude_campaign_id=other_campaign.campaign_id,
        start=NOW - timedelta(hours=1),
        end=NOW + timedelta(hours=1),
    )
    assert sorted(times) == sorted(r.scheduled_at for r in records)
    assert (
        await store.planned_times_for_mailbox(
            campaign.mailbox_id,
            exclude_campaign_id=campaign.campaign_id,
            start=NOW - timedelta(hours=1),
            end=NOW + timedelta(hours=1),
        )
        == []
    )
    mailbox = await store.get_mailbox_unscoped(campaign.mailbox_id)
    assert mailbox is not None and mailbox.user_id == campaign.user_id
    assert await store.get_mailbox_unscoped("0123456789abcdef01234567") is None


async def test_suppression_list_is_per_owner(services: Services) -> None:
    store = services.store
    alice = await make_user(services)
    bob = await make_user(services)

    def entry(user_id: str, email: str) -> Suppression:
        return Suppression(
            id=new_object_id(),
            user_id=user_id,
            email=email,
            reason=SuppressionReason.UNSUBSCRIBED,
            created_at=NOW,
        )

    assert await store.add_suppression(entry(alice.id, "x@example.com"))
    assert not await store.add_suppression(entry(alice.id, "x@example.com"))
    assert await store.suppressed_among(alice.id, ["x@example.com", "y@example.com"]) == {
        "x@example.com"
    }
    assert await store.suppressed_among(bob.id, ["x@example.com"]) == set()
    listed = await store.list_suppressions(alice.id)
    assert [s.email for s in listed.items] == ["x@example.com"]
    assert listed.items[0].reason == "unsubscribed"
    assert (await store.list_suppressions(bob.id)).total == 0
    assert not await store.remove_suppression(bob.id, "x@example.com")
    assert await store.remove_suppression(alice.id, "x@example.com")
    assert await store.suppressed_among(alice.id, ["x@example.com"]) == set()


async def test_sends_due_inside_the_window_still_go_out_just_after_it(
    services: Services,
) -> None:
    store = services.store
    campaign, _ = await _active_campaign(services, 2)
    late = campaign.end_time + EXPIRY_GRACE - timedelta(seconds=1)
    assert (await store.run_lifecycle(now=late)).expired_records == 0
    claimed = await store.claim_due(Lease("w", late, late + timedelta(minutes=2)), limit=10)
    assert len(claimed) == 2


async def test_what_a_mailbox_made_its_turn_and_records_put_back(services: Services) -> None:
    """The pacing queries (sending/pacing.py): what counts against the daily limit, the
    turn that keeps a gap between two sends across workers, and records given back later."""
    store = services.store
    campaign, _ = await _active_campaign(services, 6)
    lease = Lease("w", NOW, NOW + timedelta(minutes=2))
    claimed = await store.claim_due(lease, limit=6)
    assert await store.made_since(campaign.mailbox_id, NOW - timedelta(hours=1)) == 0
    await store.start_sending(lease, {r.id: f"<{r.id}@x>" for r in claimed[:5]})
    # Being handed over counts already (dated by its planned moment, 30 minutes ago).
    assert await store.made_since(campaign.mailbox_id, NOW - timedelta(hours=1)) == 5
    outcomes = [Outcome.SENT, Outcome.SENT, Outcome.BOUNCED, Outcome.RETRY, Outcome.UNCERTAIN]
    await store.record_results(
        [
            SendResult.of(r, outcome, retry_at=NOW + timedelta(minutes=5))
            if outcome is Outcome.RETRY
            else SendResult.of(r, outcome)
            for r, outcome in zip(claimed, outcomes, strict=False)
        ],
        now=NOW,
    )
    # Sent and bounced at the door count from when they left, maybe-sent from its moment;
    # a retry waiting for its turn counts only when it leaves.
    assert await store.made_since(campaign.mailbox_id, NOW - timedelta(hours=1)) == 4
    assert await store.made_since(campaign.mailbox_id, NOW - timedelta(minutes=10)) == 3
    assert await store.made_since(campaign.mailbox_id, NOW + timedelta(seconds=1)) == 0
    assert await store.made_since(new_object_id(), NOW - timedelta(days=1)) == 0

    # The turn: held until its end, then free for the next sender.
    first = NOW + timedelta(minutes=3)
    assert await store.take_turn(campaign.mailbox_id, now=NOW, until=first) is None
    assert (
        await store.take_turn(campaign.mailbox_id, now=NOW, until=NOW + timedelta(minutes=4))
        == first
    )
    turns = await asyncio.gather(
        *(
            store.take_turn(campaign.mailbox_id, now=first, until=first + timedelta(minutes=n))
            for n in range(1, 5)
        )
    )
    assert turns.count(None) == 1  # one of four racing workers gets it
    mailbox = await store.get_mailbox_unscoped(campaign.mailbox_id)
    assert mailbox is not None and mailbox.next_send_at is not None
    assert all(turn == mailbox.next_send_at for turn in turns if turn is not None)

    # Put back: due again no earlier than asked, never earlier than it was; only the
    # worker's own unsent claims.
    last = claimed[5]
    later = NOW + timedelta(hours=2)
    assert await store.put_back(worker_id="other", due={last.id: later}) == 0
    assert await store.put_back(worker_id="w", due={last.id: later, claimed[0].id: later}) == 1
    back = await store.get_tracking(campaign.user_id, last.id)
    assert back is not None and back.lease_owner is None and back.scheduled_at == later
    assert await store.claim_due(Lease("w", NOW, NOW + timedelta(minutes=2)), limit=10) == []
    again = await store.claim_due(Lease("w", later, later + timedelta(minutes=2)), limit=10)
    assert {r.id for r in again} == {last.id, claimed[3].id}  # and the retry, due since
    assert await store.put_back(worker_id="w", due={last.id: NOW}) == 1
    back = await store.get_tracking(campaign.user_id, last.id)
    assert back is not None and back.scheduled_at == later  # never moved earlier
