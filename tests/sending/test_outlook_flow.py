"""An Outlook mailbox from link to reply: linked by OAuth against the Microsoft identity
stand-in, sending and reading its inbox through the Graph stand-in (which accepts the
tokens the identity stand-in issued), with token refresh and a revoked grant."""

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
from mailramp.sending.worker import SendingWorker, WorkerSettings
from mailramp.tracking.inbox import DefaultInboxes, InboxPoller
from mailramp.tracking.links import TrackingLinks
from mailramp.tracking.models import TrackingStatus
from tests.sending.conftest import START, FakeClock, World
from tests.support.graph_server import GraphServer
from tests.support.oauth_servers import MicrosoftStandIn

EMAIL = "ann@contoso.com"
SECRET = "ms-client-secret"


@pytest.fixture
def microsoft() -> Iterator[MicrosoftStandIn]:
    stand_in = MicrosoftStandIn(client_id="ms-client", client_secret=SECRET).start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture
def graph(microsoft: MicrosoftStandIn) -> Iterator[GraphServer]:
    server = GraphServer(
        tokens=set(),
        accepts=lambda token: microsoft.access_tokens.get(token) == EMAIL,
        profile={"displayName": "Ann", "mail": EMAIL, "userPrincipalName": EMAIL},
    ).start()
    try:
        yield server
    finally:
        server.stop()


class Outlook:
    def __init__(
        self, world: World, secrets: SecretBox, microsoft: MicrosoftStandIn, graph: GraphServer
    ) -> None:
        self.world = world
        self.microsoft = microsoft
        self.graph = graph
        settings = Settings(
            microsoft_client_id=microsoft.client_id,
            microsoft_client_secret=SECRET,
            microsoft_authority_url=microsoft.origin,
            graph_url=graph.url,
            public_base_url="http://127.0.0.1:9",
        )
        self.linking = OAuthLinking(
            world.mailboxes,
            secrets,
            endpoints_from_settings(settings),
            public_base_url=settings.public_base_url,
            clock=world.clock,
        )
        self.tokens = MailboxTokenSources(self.linking, world.mailboxes, clock=world.clock)
        self.graph_url = settings.graph_url

    async def link(self, user: User) -> Mailbox:
        authorize_url = self.linking.start("outlook", user.user_id, login_hint=EMAIL)
        async with httpx.AsyncClient() as client:
            response = await client.get(authorize_url)
        assert response.status_code == 302, response.text
        query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
        return await self.linking.callback(
            "outlook", user.user_id, code=query.get("code"), state=query.get("state")
        )

    def worker(self) -> SendingWorker:
        return SendingWorker(
            self.world.store,
            self.world.mailboxes,
            DefaultProviders(
                allow_private_hosts=True, tokens=self.tokens, graph_url=self.graph_url
            ),
            settings=WorkerSettings(retry_base_seconds=60.0, lease_seconds=120.0),
            clock=self.world.clock,
            tracking=TrackingLinks(
                TokenSigner(derive_tracking_keys([generate_key()])), "https://t.contoso.com"
            ),
        )

    def poller(self) -> InboxPoller:
        inboxes = DefaultInboxes(
            allow_private_hosts=True,
            tokens=self.tokens,
            graph_url=self.graph_url,
            clock=self.world.clock,
        )
        return InboxPoller(self.world.store, self.world.mailboxes, inboxes, clock=self.world.clock)


@pytest.fixture
def outlook(
    world: World, secret_box: SecretBox, microsoft: MicrosoftStandIn, graph: GraphServer
) -> Outlook:
    return Outlook(world, secret_box, microsoft, graph)


def reply(to_message_id: str) -> bytes:
    return (
        f"From: Bob <bob@example.com>\r\nTo: {EMAIL}\r\nSubject: Re: Hello Bob\r\n"
        f"Message-ID: <reply1@example.com>\r\nIn-Reply-To: {to_message_id}\r\n"
        f"References: {to_message_id}\r\n\r\nSounds good.\r\n"
    ).encode()


def dsn(recipient: str, original_id: str) -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.example.com\r\nTo: {EMAIL}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {EMAIL}\r\nTo: {recipient}\r\nMessage-ID: {original_id}\r\n\r\n"
        "--B--\r\n"
    ).encode()


async def test_an_outlook_mailbox_sends_refreshes_reads_replies_and_stops_when_revoked(
    world: World, outlook: Outlook, microsoft: MicrosoftStandIn, graph: GraphServer
) -> None:
    user = await world.accounts.create_user(user_name="Ann", login_id="ann-outlook")
    mailbox = await outlook.link(user)
    assert (mailbox.provider, mailbox.email, mailbox.status) == ("outlook", EMAIL, "active")
    worker = outlook.worker()
    try:
        await _flow(world, outlook, microsoft, graph, user, mailbox, worker)
    finally:
        await worker.close()


async def _flow(
    world: World,
    outlook: Outlook,
    microsoft: MicrosoftStandIn,
    graph: GraphServer,
    user: User,
    mailbox: Mailbox,
    worker: SendingWorker,
) -> None:
    # A campaign of three, sent through Graph as MIME.
    csv = "email,first_name\nbob@example.com,Bob\ncarol@example.com,Carol\ndave@example.com,Dave\n"
    campaign, report = await world.campaign(user, mailbox, csv, duration=0.1)
    assert report.accepted == 3
    await world.run(worker, until=campaign.end_time, step_minutes=1)
    assert len(graph.sent) == 3
    assert {str(m["To"]) for m in graph.sent} == {
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    }
    for message in graph.sent:
        assert message["List-Unsubscribe"]
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    records = (await world.store.list_tracking(user.id, campaign.campaign_id)).items
    assert {r.status for r in records} == {TrackingStatus.SENT}
    by_email = {r.recipient_email: r for r in records}

    # The access token expires at Microsoft: Graph answers 401, the source refreshes once,
    # stores the new tokens, and the send goes through.
    before = await world.mailboxes.credentials(user.user_id, mailbox.id)
    assert before.access_token is not None and before.refresh_token is not None
    del microsoft.access_tokens[before.access_token.get_secret_value()]
    refreshes = len([f for f in microsoft.token_requests if f["grant_type"] == "refresh_token"])
    second, _ = await world.campaign(user, mailbox, "email\nerin@example.com\n", duration=0.1)
    await world.run(worker, until=second.end_time, step_minutes=1)
    assert len(graph.sent) == 4
    assert len(graph.seen("/me/sendMail")) == 5  # the refused one, then the sent one
    after = await world.mailboxes.credentials(user.user_id, mailbox.id)
    assert after.access_token is not None and after.refresh_token is not None
    assert after.access_token.get_secret_value() == microsoft.latest_access_token(EMAIL)
    assert after.access_token.get_secret_value() != before.access_token.get_secret_value()
    # Microsoft rotates refresh tokens; the new one is stored.
    assert after.refresh_token.get_secret_value() != before.refresh_token.get_secret_value()
    refreshed = [f for f in microsoft.token_requests if f["grant_type"] == "refresh_token"]
    assert len(refreshed) == refreshes + 1
    [erin] = (await world.store.list_tracking(user.id, second.campaign_id)).items
    assert erin.status is TrackingStatus.SENT

    # Before the stored token expires (less than two minutes left), it is refreshed first.
    stored = await world.mailboxes.get_mailbox(user.user_id, mailbox.id)
    assert stored.token_expires_at is not None
    world.clock.now = stored.token_expires_at - timedelta(seconds=60)
    third, _ = await world.campaign(user, mailbox, "email\nfrank@example.com\n", duration=0.1)
    await world.run(worker, until=third.end_time, step_minutes=1)
    assert len(graph.sent) == 5
    assert len(graph.seen("/me/sendMail")) == 6  # no 401 this time
    refreshed = [f for f in microsoft.token_requests if f["grant_type"] == "refresh_token"]
    assert len(refreshed) == refreshes + 2

    # A reply and a bounce arrive in the inbox, read through Graph.
    received = world.clock.now - timedelta(minutes=5)
    graph.deliver(reply(by_email["bob@example.com"].message_id or ""), received_at=received)
    graph.deliver(
        dsn("carol@example.com", by_email["carol@example.com"].message_id or ""),
        received_at=received + timedelta(seconds=1),
    )
    seen = await outlook.poller().poll_once()
    assert seen == {"reply": 1, "hard_bounce": 1}, seen
    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert (metrics.total_replied, metrics.total_bounced) == (1, 1)

    # The user revokes the app's access: the mailbox goes to `error`, and nothing more
    # leaves it.
    microsoft.revoke(EMAIL)
    fourth, _ = await world.campaign(user, mailbox, "email\ngina@example.com\n", duration=0.1)
    await world.run(worker, until=fourth.end_time, step_minutes=1)
    assert len(graph.sent) == 5
    broken = await world.mailboxes.get_mailbox(user.user_id, mailbox.id)
    assert broken.status is MailboxStatus.ERROR
    assert broken.status_reason is not None and "reconnect this mailbox" in broken.status_reason
    [gina] = (await world.store.list_tracking(user.id, fourth.campaign_id)).items
    assert gina.status is not TrackingStatus.SENT


async def test_a_long_graph_throttle_retries_when_graph_said(
    world: World, outlook: Outlook, graph: GraphServer
) -> None:
    user = await world.accounts.create_user(user_name="Ann", login_id="ann-throttled")
    mailbox = await outlook.link(user)
    worker = outlook.worker()
    try:
        graph.fail_next("/me/sendMail", 429, retry_after=900)
        # Three hours: the one send falls within 10-90 % of the window (the planner's
        # jitter), so the retry 15 minutes after it is always before the window closes.
        campaign, _ = await world.campaign(user, mailbox, "email\nbob@example.com\n", duration=3)
        # Scheduled somewhere in the window: run passes until the throttled attempt happened.
        while not graph.seen("/me/sendMail"):
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
        assert graph.sent == []
        world.clock.now = throttled_at + timedelta(seconds=899)
        while await worker.tick():
            pass
        assert graph.sent == []
        world.clock.now = throttled_at + timedelta(seconds=900)
        while await worker.tick():
            pass
        assert len(graph.sent) == 1
    finally:
        await worker.close()


async def test_the_runtime_wires_outlook_mailboxes_to_graph(
    tmp_path: Path, microsoft: MicrosoftStandIn, graph: GraphServer
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'mailramp.db'}",
        encryption_keys=generate_key(),
        public_base_url="http://127.0.0.1:9",
        allow_private_hosts=True,
        microsoft_client_id=microsoft.client_id,
        microsoft_client_secret=SECRET,
        microsoft_authority_url=microsoft.origin,
        graph_url=graph.url,
    )
    clock = FakeClock(START)
    runtime = await open_runtime(settings, migrate=True, clock=clock)
    try:
        user = await runtime.accounts.create_user(user_name="Ann", login_id="ann-runtime")
        authorize_url = runtime.oauth.start("outlook", user.user_id, login_hint=EMAIL)
        async with httpx.AsyncClient() as client:
            location = (await client.get(authorize_url)).headers["location"]
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        mailbox = await runtime.oauth.callback(
            "outlook", user.user_id, code=query["code"], state=query["state"]
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
            while not graph.sent and clock.now < campaign.end_time:
                while await worker.tick():
                    pass
                clock.advance(minutes=1)
        finally:
            await worker.close()
        assert [str(m["To"]) for m in graph.sent] == ["bob@example.com"]
        assert graph.sent[0]["List-Unsubscribe"]
        [record] = (await runtime.store.list_tracking(user.id, campaign.campaign_id)).items
        assert record.status is TrackingStatus.SENT

        graph.deliver(reply(record.message_id or ""), received_at=clock.now - timedelta(minutes=5))
        assert await runtime.inbox_poller().poll_once() == {"reply": 1}
    finally:
        await runtime.close()
