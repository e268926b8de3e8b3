"""A Gmail mailbox from link to reply: linked by OAuth against the Google stand-in, sending
and reading its inbox through the Gmail stand-in (which accepts the tokens the Google
stand-in issued and, like Gmail, may send under a Message-ID of its own), with token
refresh, a throttle with Retry-After, the daily sending limit and a revoked grant (the
steps it shares with the Outlook flow are in oauth_flow)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mailramp.kit.secrets import SecretBox
from mailramp.sending.message import message_id_for
from mailramp.tracking.models import TrackingStatus
from tests.sending.conftest import World
from tests.sending.oauth_flow import OAuthMailboxes, issued_by, started, the_runtime_sends_and_reads
from tests.support.gmail_server import GmailServer
from tests.support.oauth_servers import GoogleStandIn

EMAIL = "grace@gmail.example"


@pytest.fixture
def google() -> Iterator[GoogleStandIn]:
    client_id = "google-client.apps.googleusercontent.com"
    yield from started(GoogleStandIn(client_id=client_id, client_secret="google-client-secret"))


@pytest.fixture
def gmail(google: GoogleStandIn) -> Iterator[GmailServer]:
    server = GmailServer(tokens=set(), accepts=issued_by(google, EMAIL))
    server.rewrite_message_ids = True  # Gmail sends under ids of its own
    yield from started(server)


@pytest.fixture
def gmail_box(
    world: World, secret_box: SecretBox, google: GoogleStandIn, gmail: GmailServer
) -> OAuthMailboxes:
    return OAuthMailboxes(world, secret_box, google, gmail, provider="gmail", email=EMAIL)


async def test_a_gmail_mailbox_sends_refreshes_reads_replies_and_stops_when_revoked(
    gmail_box: OAuthMailboxes, gmail: GmailServer
) -> None:
    async with gmail_box.linked(user_name="Grace", login_id="grace-gmail") as linked:
        # A campaign of three, sent raw through messages.send; Gmail replaces the Message-IDs.
        sent = await gmail_box.send_a_campaign_of_three(linked)
        gmail_ids = {str(m["To"]): str(m["Message-ID"]) for m in gmail.sent}
        for email, record in sent.items():
            # The record names the message Gmail sent, not the id mailramp gave it.
            assert record.message_id == gmail_ids[email]
            assert record.message_id != message_id_for(record.id, EMAIL)
            assert record.message_id.endswith("@mail.gmail.com>")

        before, after, erin = await gmail_box.an_expired_token_is_refreshed(linked)
        # Google keeps the refresh token it issued.
        assert after.refresh_token is not None and before.refresh_token is not None
        assert after.refresh_token.get_secret_value() == before.refresh_token.get_secret_value()
        assert erin.message_id == str(gmail.sent[-1]["Message-ID"])

        # A reply naming Gmail's id and a mailer-daemon bounce arrive, read through the API.
        await gmail_box.a_reply_and_a_bounce_are_read(sent)
        # Both were read whole (format=raw), once each, for the classifier.
        raw_reads = [r for r in gmail.seen("/messages/") if r.query.get("format") == ["raw"]]
        assert len(raw_reads) == 2
        # Bob's reply answered from the inbox, through the Gmail API, in his thread; Gmail
        # sends it under an id of its own, which the answer is kept under.
        answered = await gmail_box.bob_is_answered_from_the_inbox(linked, sent["bob@example.com"])
        assert answered.endswith("@mail.gmail.com>")

        await gmail_box.revoking_the_grant_stops_the_mailbox(linked)
        assert len(gmail.sent) == 5


async def test_a_long_gmail_throttle_retries_when_gmail_said(gmail_box: OAuthMailboxes) -> None:
    async with gmail_box.linked(user_name="Grace", login_id="grace-throttled") as linked:
        await gmail_box.a_long_throttle_is_retried_when_the_api_said(linked)


async def test_the_daily_sending_limit_holds_the_mailbox_until_the_time_gmail_named(
    world: World, gmail_box: OAuthMailboxes, gmail: GmailServer
) -> None:
    async with gmail_box.linked(user_name="Grace", login_id="grace-limited") as linked:
        # Two sends over four hours fall at 5-45 % and 55-95 % of the window (the planner's
        # jitter): both come due before the limit lifts, 3 h 55 min in.
        csv = "email\nbob@example.com\ncarol@example.com\n"
        campaign, _ = await world.campaign(linked.user, linked.mailbox, csv, duration=4)
        lifts_at = campaign.start_time + timedelta(hours=3, minutes=55)
        gmail.clock = world.clock
        gmail.limit_sending(until=lifts_at)

        await gmail_box.run_until_the_first_send(linked.worker, lifts_at)
        [throttled] = [
            r for r in await gmail_box.records(linked, campaign.campaign_id) if r.last_error
        ]
        assert throttled.status is TrackingStatus.PENDING
        assert throttled.attempts == 0  # waiting for Gmail's limit uses no attempt
        assert throttled.last_error is not None
        assert "Retry after " + lifts_at.strftime("%Y-%m-%dT%H:%M:%S.000Z") in throttled.last_error
        assert throttled.scheduled_at == lifts_at

        # The owner renames the mailbox meanwhile, so the worker makes itself a new provider.
        await world.mailboxes.update_mailbox(
            linked.user.user_id, linked.mailbox.id, display_name="Grace H."
        )
        # Up to the moment the limit lifts, the other send comes due too and waits for the
        # same time, without asking Gmail: nothing more reaches it.
        await world.run(linked.worker, until=lifts_at, step_minutes=1)
        assert len(gmail.seen("/messages/send")) == 1
        assert gmail.sent == []
        records = await gmail_box.records(linked, campaign.campaign_id)
        assert [(r.status, r.attempts, r.scheduled_at) for r in records] == [
            (TrackingStatus.PENDING, 0, lifts_at),
            (TrackingStatus.PENDING, 0, lifts_at),
        ]

        world.clock.now = lifts_at
        while await linked.worker.tick():
            pass
        assert sorted(str(m["To"]) for m in gmail.sent) == ["bob@example.com", "carol@example.com"]
        records = await gmail_box.records(linked, campaign.campaign_id)
        assert [(r.status, r.attempts) for r in records] == [(TrackingStatus.SENT, 1)] * 2


async def test_the_runtime_wires_gmail_mailboxes_to_the_gmail_api(
    tmp_path: Path, google: GoogleStandIn, gmail: GmailServer
) -> None:
    await the_runtime_sends_and_reads(tmp_path, google, gmail, provider="gmail", email=EMAIL)
