"""The automatic brakes, through a real SMTP server (and a real IMAP server for the
complaint) with an injected clock: a campaign that hits 4 % bounces pauses itself and
says why, a mailbox with complaints stops its campaign sends; nothing else stops; a resume
is one action, and the same brake then waits unless the rate rises."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailramp.campaigns.models import CampaignStatus
from mailramp.tracking.models import TrackingStatus
from tests.sending.conftest import World
from tests.support.dovecot import Dovecot
from tests.support.inbound_mail import arf_complaint
from tests.tracking.test_inbox import CSV as FIVE
from tests.tracking.test_inbox import _append, inbox_poller, reading_sender

REFUSED = "550 5.1.1 <{}>: no such user here!"


def people(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n}@example.com" for n in range(count)]


def csv(addresses: list[str]) -> str:
    return "email\n" + "".join(f"{address}\n" for address in addresses)


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_a_campaign_past_three_percent_bounces_pauses_itself_and_nothing_else(
    world: World,
) -> None:
    user, mailbox = await world.sender(daily_limit=500)
    stale, fresh = people("stale", 60), people("fresh", 30)
    for address in stale[:2]:
        world.smtp.inbox.rcpt_replies[address] = [REFUSED.format(address)]
    bad, _ = await world.campaign(user, mailbox, csv(stale), duration=72)

    await world.send_first(*stale[:50])  # 2 of the first 50 refused: 4 %
    assert await world.deliverability.apply_brakes() == [f"campaign {bad.campaign_id}"]

    paused = await world.campaigns.get_campaign(user.user_id, bad.campaign_id)
    assert paused.status is CampaignStatus.PAUSED
    assert paused.brake_reason == (
        "paused by its bounce brake: 2 of 50 people bounced (4 %, above 3 %); clean the "
        "list, then resume"
    )
    # The next hours: another campaign of the mailbox goes on, the paused one sends
    # nothing more.
    await world.campaign(user, mailbox, csv(fresh), duration=4)
    await world.run(world.worker(), until=world.clock.now + timedelta(hours=5))
    assert world.smtp.inbox.count_by_recipient().keys() == set(stale[2:50]) | set(fresh)
    held = await world.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id)
    assert held.braked_at is None and held.can_send

    # One action resumes it; the brake then waits 7 days unless the rate rises.
    resumed = await world.campaigns.resume(user.user_id, bad.campaign_id)
    assert (resumed.brake_reason, resumed.brake_resumed_rate) == (None, 4.0)
    assert await world.deliverability.apply_brakes() == []
    bouncing = stale[50]
    world.smtp.inbox.rcpt_replies[bouncing] = [REFUSED.format(bouncing)]
    await world.send_first(*stale[50:55])  # 3 of 55: 5.45 %, rising
    assert await world.deliverability.apply_brakes() == [f"campaign {bad.campaign_id}"]
    again = await world.campaigns.get_campaign(user.user_id, bad.campaign_id)
    assert again.status is CampaignStatus.PAUSED
    assert again.brake_reason is not None and "3 of 55 people bounced" in again.brake_reason


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_mailbox_with_complaints_stops_its_campaign_sends_and_nothing_else(
    world: World, dovecot: Dovecot
) -> None:
    user, mailbox = await reading_sender(world, dovecot)
    first, _ = await world.campaign(user, mailbox, FIVE, duration=1)
    await world.run(world.worker(), until=first.end_time)
    records = await world.store.step_emails(first.campaign_id, 1)
    carol = next(r for r in records if r.recipient_email == "carol@example.com")
    _append(dovecot, arf_complaint("carol@example.com", carol.message_id or ""))
    assert (await inbox_poller(world).poll_once())["complaint"] == 1

    # Another mailbox of another user sends as before.
    other_user, other = await world.sender(email="zed@other.example", daily_limit=500)
    world.smtp.inbox.accounts["zed@other.example"] = "smtp-password"
    later, _ = await world.campaign(user, mailbox, csv(people("later", 3)), duration=24)
    elsewhere, _ = await world.campaign(other_user, other, csv(people("elsewhere", 3)), duration=24)

    await world.deliverability.roll_up()
    assert await world.deliverability.apply_brakes() == [f"mailbox {mailbox.mailbox_id}"]

    braked = await world.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id)
    assert braked.brake_reason == (
        "campaign sends stopped by the complaint brake: 1 complaints in 5 emails over 30 "
        "days (20 %, above 0.3 %); warm-up goes on"
    )
    assert not braked.can_send and braked.can_connect
    await world.run(world.worker(), until=world.clock.now + timedelta(days=1, hours=1))
    arrived = world.smtp.inbox.count_by_recipient()
    assert not set(people("later", 3)) & arrived.keys()
    assert set(people("elsewhere", 3)) <= arrived.keys()
    waiting = await world.store.step_emails(later.campaign_id, 1)
    assert {r.status for r in waiting} <= {TrackingStatus.PENDING, TrackingStatus.EXPIRED}
    assert (await world.campaigns.get_campaign(user.user_id, later.campaign_id)).status in (
        CampaignStatus.ACTIVE,
        CampaignStatus.COMPLETED,
    )
    assert elsewhere.campaign_id

    # Resuming is one action; the brake then waits while the rate does not rise.
    resumed = await world.deliverability.resume_mailbox(user.user_id, mailbox.mailbox_id)
    assert resumed.can_send and resumed.brake_resumed_rate == 20.0
    assert await world.deliverability.apply_brakes() == []
