"""A Gmail mailbox from link to reply: linked by OAuth against the Google stand-in, sending
and reading its inbox through the Gmail stand-in (which accepts the tokens the Google
stand-in issued and, like Gmail, may send under a Message-ID of its own), with token
refresh, a throttle with Retry-After and a revoked grant."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mailramp.accounts.models import User
from mailramp.config import Settings
from mailramp.kit.secrets import SecretBox, generate_key
from mailramp.kit.signing import TokenSigner, derive_tracking_keys
from mailramp.mailboxes.models import Mailbox, MailboxStatus
from mailramp.oauth import OAuthLinking, endpoints_from_settings
from mailramp.oauth.tokens import MailboxTokenSources
from mailramp.providers.registry import DefaultProviders
from mailramp.runtime import open_runtime
from mailramp.sending.message import message_id_for
from mailramp.sending.worker import SendingWorker, WorkerSettings
from mailramp.tracking.inbox import DefaultInboxes, InboxPoller
from mailramp.tracking.links import TrackingLinks
from mailramp.tracking.models import TrackingStatus
from tests.sending.conftest import START, FakeClock, World
from tests.sending.test_outlook_flow import dsn
from tests.support.gmail_server import GmailServer
from tests.support.oauth_servers import GoogleStandIn

EMAIL = "grace@gmail.example"
SECRET = "google-client-secret"


@pytest.fixture
def google() -> Iterator[GoogleStandIn]:
    stand_in = GoogleStandIn(
        client_id="google-client.apps.googleusercontent.com", client_secret=SECRET
    )
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture
def gmail(google: GoogleStandIn) -> Iterator[GmailServer]:
    server = GmailServer(
        tokens=set(), accepts=lambda token: google.access_tokens.get(token) == EMAIL
    ).start()
    server.rewrite_message_ids = True  # Gmail sends under ids of its own
    try:
        yield server
    finally:
        server.stop()


def google_settings(google: GoogleStandIn, gmail: GmailServer, **fields: object) -> Settings:
    return Settings(
        google_client_id=google.client_id,
        google_client_secret=SECRET,
        google_auth_url=google.auth_url,
        google_token_url=google.token_url,
        google_userinfo_url=google.userinfo_url,
        gmail_url=gmail.url,
        public_base_url="http://127.0.0.1:9",
        **fields,  # type: ignore[arg-type]
    )


class Gmail:
    def __init__(
        self, world: World, secrets: SecretBox, google: GoogleStandIn, gmail: GmailServer
    ) -> None:
        self.world = world
        settings = google_settings(google, gmail)
        self.linking = OAuthLinking(
            world.mailboxes,
            secrets,
            endpoints_from_settings(settings),
            public_base_url=settings.public_base_url,
            clock=world.clock,
        )
        self.tokens = MailboxTokenSources(self.linking, world.mailboxes, clock=world.clock)
        self.gmail_url = settings.gmail_url

    async def link(self, user: User) -> Mailbox:
        authorize_url = self.linking.start("gmail", user.user_id, login_hint=EMAIL)
        async with httpx.AsyncClient() as client:
            response = await client.get(authorize_url)
        assert response.status_code == 302, response.text
        query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
        return await self.linking.callback(
            "gmail", user.user_id, code=query.get("code"), state=query.get("state")
        )

    def worker(self) -> SendingWorker:
        return SendingWorker(
            self.world.store,
            self.world.mailboxes,
            DefaultProviders(
                allow_private_hosts=True, tokens=self.tokens, gmail_url=self.gmail_url
            ),
            settings=WorkerSettings(retry_base_seconds=60.0, lease_seconds=120.0),
            clock=self.world.clock,
            tracking=TrackingLinks(
                TokenSigner(derive_tracking_keys([generate_key()])), "https://t.gmail.example"
            ),
        )

    def poller(self) -> InboxPoller:
        inboxes = DefaultInboxes(
            allow_private_hosts=True,
            tokens=self.tokens,
            gmail_url=self.gmail_url,
            clock=self.world.clock,
        )
        return InboxPoller(self.world.store, self.world.mailboxes, inboxes, clock=self.world.clock)


@pytest.fixture
def gmail_box(
    world: World, secret_box: SecretBox, google: GoogleStandIn, gmail: GmailServer
) -> Gmail:
    return Gmail(world, secret_box, google, gmail)


def reply(to_message_id: str) -> bytes:
    return (
        f"From: Bob <bob@example.com>\r\nTo: {EMAIL}\r\nSubject: Re: Hello Bob\r\n"
        f"Message-ID: <reply1@example.com>\r\nIn-Reply-To: {to_message_id}\r\n"
        f"References: {to_message_id}\r\n\r\nSounds good.\r\n"
    ).encode()


async def test_a_gmail_mailbox_sends_refreshes_reads_replies_and_stops_when_revoked(
    world: World, gmail_box: Gmail, google: GoogleStandIn, gmail: GmailServer
) -> None:
    user = await world.accounts.create_user(user_name="Grace", login_id="grace-gmail")
    mailbox = await gmail_box.link(user)
    assert (mailbox.provider, mailbox.email, mailbox.status) == ("gmail", EMAIL, "active")
    worker = gmail_box.worker()
    try:
        await _flow(world, gmail_box, google, gmail, user, mailbox, worker)
    finally:
        await worker.close()


async def _flow(
    world: World,
    gmail_box: Gmail,
    google: GoogleStandIn,
    gmail: GmailServer,
    user: User,
    mailbox: Mailbox,
    worker: SendingWorker,
) -> None:
    # A campaign of three, sent raw through messages.send; Gmail replaces the Message-IDs.
    csv = "email,first_name\nbob@example.com,Bob\ncarol@example.com,Carol\ndave@example.com,Dave\n"
    campaign, report = await world.campaign(user, mailbox, csv, duration=0.1)
    assert report.accepted == 3
    await world.run(worker, until=campaign.end_time, step_minutes=1)
    assert len(gmail.sent) == 3
    assert {str(m["To"]) for m in gmail.sent} == {
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    }
    for message in gmail.sent:
        assert message["List-Unsubscribe"]
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    gmail_ids = {str(m["To"]): str(m["Message-ID"]) for m in gmail.sent}
    records = (await world.store.list_tracking(user.id, campaign.campaign_id)).items
    assert {r.status for r in records} == {TrackingStatus.SENT}
    by_email = {r.recipient_email: r for r in records}
    for email, record in by_email.items():
        # The record names the message Gmail sent, not the id mailramp gave it.
        assert record.message_id == gmail_ids[email]
        assert record.message_id != message_id_for(record.id, EMAIL)
        assert record.message_id.endswith("@mail.gmail.com>")

    # The access token expires at Google: Gmail answers 401, the source refreshes once,
    # stores the new access token, and the send goes through.
    before = await world.mailboxes.credentials(user.user_id, mailbox.id)
    assert before.access_token is not None and before.refresh_token is not None
    del google.access_tokens[before.access_token.get_secret_value()]
    refreshes = len([f for f in google.token_requests if f["grant_type"] == "refresh_token"])
    second, _ = await world.campaign(user, mailbox, "email\nerin@example.com\n", duration=0.1)
    await world.run(worker, until=second.end_time, step_minutes=1)
    assert len(gmail.sent) == 4
    assert len(gmail.seen("/messages/send")) == 5  # the refused one, then the sent one
    after = await world.mailboxes.credentials(user.user_id, mailbox.id)
    assert after.access_token is not None and after.refresh_token is not None
    assert after.access_token.get_secret_value() == google.latest_access_token(EMAIL)
    assert after.access_token.get_secret_value() != before.access_token.get_secret_value()
    # Google keeps the refresh token it issued.
    assert after.refresh_token.get_secret_value() == before.refresh_token.get_secret_value()
    refreshed = [f for f in google.token_requests if f["grant_type"] == "refresh_token"]
    assert len(refreshed) == refreshes + 1
    [erin] = (await world.store.list_tracking(user.id, second.campaign_id)).items
    assert erin.status is TrackingStatus.SENT
    assert erin.message_id == str(gmail.sent[-1]["Message-ID"])

    # A reply naming Gmail's id and a mailer-daemon bounce arrive, read through the API.
    bob_id = by_email["bob@example.com"].message_id or ""
    carol_id = by_email["carol@example.com"].message_id or ""
    received = world.clock.now - timedelta(minutes=5)
    gmail.deliver(reply(bob_id), received_at=received)
    gmail.deliver(dsn("carol@example.com", carol_id), received_at=received + timedelta(seconds=1))
    seen = await gmail_box.poller().poll_once()
    assert seen == {"reply": 1, "hard_bounce": 1}, seen
    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert (metrics.total_replied, metrics.total_bounced) == (1, 1)
    # The bounce's whole message was read (format=raw); the reply's metadata was enough.
    raw_reads = [r for r in gmail.seen("/messages/") if r.query.get("format") == ["raw"]]
    assert len(raw_reads) == 1

    # The user revokes the app's access: the mailbox goes to `error`, and nothing more
    # leaves it.
    google.revoke(EMAIL)
    third, _ = await world.campaign(user, mailbox, "email\ngina@example.com\n", duration=0.1)
    await world.run(worker, until=third.end_time, step_minutes=1)
    assert len(gmail.sent) == 4
    broken = await world.mailboxes.get_mailbox(user.user_id, mailbox.id)
    assert broken.status is MailboxStatus.ERROR
    assert broken.status_reason is not None and "reconnect this mailbox" in broken.status_reason
    [gina] = (await world.store.list_tracking(user.id, third.campaign_id)).items
    assert gina.status is not TrackingStatus.SENT


async def test_a_long_gmail_throttle_retries_when_gmail_said(
    world: World, gmail_box: Gmail, gmail: GmailServer
) -> None:
    user = await world.accounts.create_user(user_name="Grace", login_id="grace-throttled")
    mailbox = await gmail_box.link(user)
    worker = gmail_box.worker()
    try:
        gmail.fail_next("/messages/send", 429, retry_after=900)
        # Three hours: the one send falls within 10-90 % of the window (the planner's
        # jitter), so the retry 15 minutes after it is always before the window closes.
        campaign, _ = await world.campaign(user, mailbox, "email\nbob@example.com\n", duration=3)
        # Scheduled somewhere in the window: run passes until the throttled attempt happened.
        while not gmail.seen("/messages/send"):
            assert world.clock.now < campaign.end_time
            world.clock.advance(minutes=1)
            while await worker.tick():
                pass
        throttled_at = world.clock.now
        [record] = (await world.store.list_tracking(user.id, campaign.campaign_id)).items
        assert record.status is TrackingStatus.PENDING
        assert record.attempts == 1
        assert record.last_error is not None and "retry after 900" in record.last_error
        assert record.scheduled_at == throttled_at + timedelta(seconds=900)
        assert gmail.sent == []
        world.clock.now = throttled_at + timedelta(seconds=899)
        while await worker.tick():
            pass
        assert gmail.sent == []
        world.clock.now = throttled_at + timedelta(seconds=900)
        while await worker.tick():
            pass
        assert len(gmail.sent) == 1
        [record] = (await world.store.list_tracking(user.id, campaign.campaign_id)).items
        assert record.status is TrackingStatus.SENT
        assert record.message_id == str(gmail.sent[0]["Message-ID"])
    finally:
        await worker.close()


async def test_the_runtime_wires_gmail_mailboxes_to_the_gmail_api(
    tmp_path: Path, google: GoogleStandIn, gmail: GmailServer
) -> None:
    settings = google_settings(
        google,
        gmail,
        database_url=f"sqlite:///{tmp_path / 'mailramp.db'}",
        encryption_keys=generate_key(),
        allow_private_hosts=True,
    )
    clock = FakeClock(START)
    runtime = await open_runtime(settings, migrate=True, clock=clock)
    try:
        user = await runtime.accounts.create_user(user_name="Grace", login_id="grace-runtime")
        authorize_url = runtime.oauth.start("gmail", user.user_id, login_hint=EMAIL)
        async with httpx.AsyncClient() as client:
            location = (await client.get(authorize_url)).headers["location"]
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        mailbox = await runtime.oauth.callback(
            "gmail", user.user_id, code=query["code"], state=query["state"]
        )
        campaign = await runtime.campaigns.create_campaign(
            user.user_id,
            mailbox_id=mailbox.mailbox_id,
            campaign_name="Now",
            subject="Hello",
            message="Hi",
            duration=1,
            start_time=clock.now,
        )
        await runtime.sending.import_recipients(
            user.user_id, campaign.campaign_id, io.BytesIO(b"email\nbob@example.com\n")
        )
        worker = runtime.worker()
        try:
            while not gmail.sent and clock.now < campaign.end_time:
                while await worker.tick():
                    pass
                clock.advance(minutes=1)
        finally:
            await worker.close()
        assert [str(m["To"]) for m in gmail.sent] == ["bob@example.com"]
        assert gmail.sent[0]["List-Unsubscribe"]
        [record] = (await runtime.store.list_tracking(user.id, campaign.campaign_id)).items
        assert record.status is TrackingStatus.SENT
        assert record.message_id == str(gmail.sent[0]["Message-ID"])

        gmail.deliver(reply(record.message_id or ""), received_at=clock.now - timedelta(minutes=5))
        assert await runtime.inbox_poller().poll_once() == {"reply": 1}
    finally:
        await runtime.close()
