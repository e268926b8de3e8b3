"""A campaign that sends from several mailboxes, through a real SMTP server with an injected
clock, on every backend: each person gets one email from one of them, no mailbox goes over
its daily limit (shared with its other campaigns), and a plan that cannot fit says how many
mailboxes would."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from mailramp.accounts.models import User
from mailramp.errors import (
    ConflictError,
    NotEditableError,
    NotFoundError,
    PlanError,
    ValidationError,
)
from mailramp.mailboxes.models import Mailbox
from mailramp.tracking.repository import RecipientQuery
from tests.sending.conftest import World


def people(count: int, start: int = 0) -> str:
    return "email\n" + "".join(f"p{n}@example.com\n" for n in range(start, start + count))


async def second_mailbox(world: World, user: User, email: str, limit: int) -> Mailbox:
    world.smtp.inbox.accounts[email] = "smtp-password"
    return await world.mailboxes.create_mailbox(
        user.user_id,
        email=email,
        provider="smtp",
        smtp_host="127.0.0.1",
        smtp_port=world.smtp.port,
        smtp_security="plain",
        password="smtp-password",
        daily_limit=limit,
    )


async def test_each_person_gets_one_email_from_one_mailbox_within_each_limit(
    world: World,
) -> None:
    user, ann = await world.sender(daily_limit=6)
    zed = await second_mailbox(world, user, "zed@acme.com", 6)
    # Another campaign already holds 2 of ann's 6 sends today.
    other, _ = await world.campaign(user, ann, people(2, start=100), duration=2)
    campaign, report = await world.campaign(
        user, ann, people(10), duration=2, mailbox_ids=[ann.mailbox_id, zed.mailbox_id]
    )
    assert campaign.mailbox_ids == [ann.mailbox_id, zed.mailbox_id]
    assert report.accepted == 10

    await world.run(world.worker(), until=campaign.end_time)
    sent = [(r.message["To"], r.sender) for r in world.smtp.inbox.messages]
    assert Counter(to for to, _ in sent) == {f"p{n}@example.com": 1 for n in (*range(10), 100, 101)}
    by_sender = Counter(sender for to, sender in sent if not to.startswith("p10"))
    assert by_sender == {"ann@acme.com": 4, "zed@acme.com": 6}  # ann had 4 left, zed 6
    records = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    from_mailbox = {ann.mailbox_id: "ann@acme.com", zed.mailbox_id: "zed@acme.com"}
    assert {r.recipient_email: from_mailbox[r.mailbox_id] for r in records.items} == {
        to: sender for to, sender in sent if not to.startswith("p10")
    }
    assert (await world.metrics.get_campaign_metrics(campaign.campaign_id)).total_sent == 10
    assert other.mailbox_ids == [ann.mailbox_id]


async def test_a_plan_that_does_not_fit_names_the_mailboxes_that_would(world: World) -> None:
    user, ann = await world.sender(daily_limit=5)
    zed = await second_mailbox(world, user, "zed@acme.com", 5)
    with pytest.raises(PlanError) as refused:
        await world.campaign(
            user, ann, people(12), duration=2, mailbox_ids=[ann.mailbox_id, zed.mailbox_id]
        )
    error = refused.value
    assert error.field == "total_recipients" and error.fit == 10 and error.needed_mailboxes == 3
    assert error.detail == (
        "only 10 of 12 recipients fit in 2 hours from 2 mailboxes; a duration of at least "
        "16 hours or 3 mailboxes like the first would fit them all"
    )


async def test_mailboxes_are_checked_and_a_mailbox_in_use_stays_linked(world: World) -> None:
    user, ann = await world.sender()
    zed = await second_mailbox(world, user, "zed@acme.com", 50)
    both = [ann.mailbox_id, zed.mailbox_id]
    with pytest.raises(ValidationError) as repeated:
        await world.campaign(user, ann, people(1), mailbox_ids=[ann.mailbox_id, ann.mailbox_id])
    assert repeated.value.field == "mailbox_ids" and "twice" in repeated.value.detail
    with pytest.raises(ValidationError) as wrong_first:
        await world.campaign(user, ann, people(1), mailbox_ids=[zed.mailbox_id, ann.mailbox_id])
    assert "must start with mailbox_id" in wrong_first.value.detail
    stranger = await world.accounts.create_user(user_name="Eve", login_id="eve-many")
    theirs = await second_mailbox(world, stranger, "eve@acme.com", 50)
    with pytest.raises(NotFoundError):
        await world.campaign(user, ann, people(1), mailbox_ids=[ann.mailbox_id, theirs.id])
    await world.mailboxes.pause(user.user_id, zed.mailbox_id)
    with pytest.raises(ConflictError) as paused:
        await world.campaign(user, ann, people(1), mailbox_ids=both)
    assert paused.value.field == "mailbox_ids" and "zed@acme.com is inactive" in paused.value.detail
    assert (await world.campaigns.list_campaigns(user.user_id)).total == 0

    await world.mailboxes.activate(user.user_id, zed.mailbox_id)
    later = world.clock.now + timedelta(hours=1)
    campaign, _ = await world.campaign(user, ann, people(4), mailbox_ids=both, start_time=later)
    with pytest.raises(ConflictError) as in_use:
        await world.mailboxes.unlink_mailbox(user.user_id, zed.mailbox_id)
    assert "1 campaign(s) still use this mailbox" in in_use.value.detail

    # Down to one mailbox before it starts: the waiting emails move to it, and the other
    # is free to go.
    edited = await world.campaigns.update_campaign(
        user.user_id, campaign.campaign_id, mailbox_ids=[zed.mailbox_id]
    )
    assert (edited.mailbox_id, edited.mailbox_ids) == (zed.mailbox_id, [zed.mailbox_id])
    records = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    assert {r.mailbox_id for r in records.items} == {zed.mailbox_id}
    await world.mailboxes.unlink_mailbox(user.user_id, ann.mailbox_id)


async def test_a_mailbox_that_stops_hands_its_waiting_emails_to_the_others(world: World) -> None:
    user, ann = await world.sender(daily_limit=20)
    zed = await second_mailbox(world, user, "zed@acme.com", 20)
    both = [ann.mailbox_id, zed.mailbox_id]
    campaign, _ = await world.campaign(user, ann, people(10), duration=2, mailbox_ids=both)

    async def shares() -> Counter[str]:
        page = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
        return Counter(r.mailbox_id for r in page.items if r.status == "pending")

    assert await shares() == {ann.mailbox_id: 5, zed.mailbox_id: 5}
    by_day = await world.campaigns.pending_by_day(user.user_id, campaign.campaign_id)
    today = world.clock.now.date()
    assert [(d.mailbox_id, d.day, d.first_emails) for d in by_day] == sorted(
        [(ann.mailbox_id, today, 5), (zed.mailbox_id, today, 5)]
    )
    await world.mailboxes.pause(user.user_id, zed.mailbox_id)
    assert await shares() == {ann.mailbox_id: 10}
    await world.mailboxes.activate(user.user_id, zed.mailbox_id)
    assert await shares() == {ann.mailbox_id: 5, zed.mailbox_id: 5}

    # The worker finds zed's password refused: zed goes to `error`, and what it had not sent
    # goes out from ann.
    world.smtp.inbox.accounts["zed@acme.com"] = "changed-by-its-owner"
    await world.run(world.worker(), until=campaign.end_time)
    stopped = await world.mailboxes.get_mailbox(user.user_id, zed.mailbox_id)
    assert stopped.status == "error"
    senders = Counter(r.sender for r in world.smtp.inbox.messages)
    assert senders == {"ann@acme.com": 10}
    assert (await world.metrics.get_campaign_metrics(campaign.campaign_id)).total_sent == 10


async def test_a_stopped_mailboxs_follow_ups_wait_for_it_and_its_first_emails_move(
    world: World,
) -> None:
    user, ann = await world.sender(daily_limit=20)
    zed = await second_mailbox(world, user, "zed@acme.com", 20)
    campaign, _ = await world.campaign(
        user,
        ann,
        people(4),
        duration=24 * 5,
        mailbox_ids=[ann.mailbox_id, zed.mailbox_id],
        campaign_steps=[{"delay_days": 1, "message": "Following up."}],
    )
    firsts = await world.store.step_emails(campaign.campaign_id, 1)
    zeds = sorted(r.recipient_email for r in firsts if r.mailbox_id == zed.mailbox_id)
    anns = sorted(r.recipient_email for r in firsts if r.mailbox_id == ann.mailbox_id)
    assert len(zeds) == len(anns) == 2
    await world.send_first(zeds[0], anns[0])  # one person written to from each mailbox
    await world.mailboxes.pause(user.user_id, zed.mailbox_id)

    # Zed's person not written to yet moves to ann; zed's person already written to keeps
    # zed for their follow-up (another sender would break the thread): it waits.
    world.clock.advance(days=2)
    await world.make_due(*zeds, *anns)
    worker = world.worker()
    while await worker.tick():
        pass
    sent = Counter((r.recipients[0], r.sender) for r in world.smtp.inbox.messages)
    assert sent == {
        (zeds[0], "zed@acme.com"): 1,
        (anns[0], "ann@acme.com"): 2,  # first email and follow-up
        (zeds[1], "ann@acme.com"): 1,
        (anns[1], "ann@acme.com"): 1,
    }
    waiting = await world.store.sequence_emails(campaign.campaign_id, zeds[0])
    assert [(r.step, r.status, r.mailbox_id) for r in waiting] == [
        (1, "sent", zed.mailbox_id),
        (2, "pending", zed.mailbox_id),
    ]
    # Back, zed sends it.
    before = len(world.smtp.inbox.messages)
    await world.mailboxes.activate(user.user_id, zed.mailbox_id)
    await world.make_due(zeds[0])
    while await worker.tick():
        pass
    await worker.close()
    later = [(r.recipients[0], r.sender) for r in world.smtp.inbox.messages[before:]]
    assert later == [(zeds[0], "zed@acme.com")]


async def test_a_mailbox_added_to_a_running_campaign_takes_a_share_of_those_not_contacted(
    world: World,
) -> None:
    user, ann = await world.sender(daily_limit=10)
    zed = await second_mailbox(world, user, "zed@acme.com", 10)
    campaign, _ = await world.campaign(user, ann, people(12), duration=48)
    await world.send_first("p0@example.com")
    running = await world.campaigns.get_campaign(user.user_id, campaign.campaign_id)
    assert running.status == "active"

    both = [ann.mailbox_id, zed.mailbox_id]
    changed = await world.campaigns.update_campaign(
        user.user_id, campaign.campaign_id, mailbox_ids=both
    )
    assert changed.status == "active" and changed.mailbox_ids == both
    page = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    senders = {r.recipient_email: r.mailbox_id for r in page.items}
    assert senders.pop("p0@example.com") == ann.mailbox_id  # contacted: keeps its mailbox
    assert Counter(senders.values()) == {ann.mailbox_id: 5, zed.mailbox_id: 6}
    # Nothing else of a running campaign changes.
    with pytest.raises(NotEditableError):
        await world.campaigns.update_campaign(user.user_id, campaign.campaign_id, subject="New")

    await world.run(world.worker(), until=campaign.end_time)
    sent = Counter(r.sender for r in world.smtp.inbox.messages)
    assert sent == {"ann@acme.com": 6, "zed@acme.com": 6}
