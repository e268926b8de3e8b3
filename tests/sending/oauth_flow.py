"""What the Outlook and Gmail flow tests share: a mailbox linked by OAuth against an
identity stand-in, a worker and an inbox poller wired as the runtime wires them (on the
world's clock), and the steps both flows take: send a campaign, refresh an expired token,
read a reply and a bounce, stop when the grant is revoked, retry a long throttle when the
API said, and the same through a whole runtime."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx

from mailramp.accounts.models import User
from mailramp.config import Settings
from mailramp.conversations.answers import AnswerService
from mailramp.kit.secrets import SecretBox, generate_key
from mailramp.kit.signing import TokenSigner, derive_tracking_keys
from mailramp.mailboxes.models import NO_GAP, Mailbox, MailboxStatus
from mailramp.mailboxes.service import MailboxCredentials
from mailramp.oauth import OAuthLinking, endpoints_from_settings
from mailramp.oauth.tokens import MailboxTokenSources
from mailramp.providers.registry import DefaultInboxes, DefaultProviders
from mailramp.runtime import open_runtime
from mailramp.sending.worker import SendingWorker, WorkerSettings
from mailramp.tracking.inbox import InboxPoller
from mailramp.tracking.links import TrackingLinks
from mailramp.tracking.models import EmailTracking, TrackingStatus
from mailramp.tracking.repository import RecipientQuery
from tests.sending.conftest import START, World
from tests.support.api_stand_in import ApiStandIn
from tests.support.clock import FakeClock
from tests.support.oauth_servers import GoogleStandIn, MicrosoftStandIn, OAuthStandIn
from tests.support.provider_mail import dsn, reply

THREE = "email,first_name\nbob@example.com,Bob\ncarol@example.com,Carol\ndave@example.com,Dave\n"


class Server(Protocol):
    def start(self) -> Any: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Server)


def started(server: S) -> Iterator[S]:
    """A fixture's body for a stand-in: started, handed over, stopped."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


def issued_by(identity: OAuthStandIn, email: str) -> Callable[[str], bool]:
    """Whether a bearer token is one the identity stand-in issued for `email`."""
    return lambda token: identity.access_tokens.get(token) == email


def stand_in_fields(identity: OAuthStandIn, api: ApiStandIn) -> dict[str, Any]:
    """The settings that point mailramp at the identity stand-in and the API stand-in."""
    if isinstance(identity, MicrosoftStandIn):
        return {
            "microsoft_client_id": identity.client_id,
            "microsoft_client_secret": identity.client_secret,
            "microsoft_authority_url": identity.origin,
            "graph_url": api.url,
        }
    assert isinstance(identity, GoogleStandIn)
    return {
        "google_client_id": identity.client_id,
        "google_client_secret": identity.client_secret,
        "google_auth_url": identity.auth_url,
        "google_token_url": identity.token_url,
        "google_userinfo_url": identity.userinfo_url,
        "gmail_url": api.url,
    }


async def link(oauth: OAuthLinking, provider: str, user: User, email: str) -> Mailbox:
    """Link `email`'s mailbox as the identity stand-in's user who signs in and consents."""
    authorize_url = oauth.start(provider, user.user_id, login_hint=email)
    async with httpx.AsyncClient() as client:
        response = await client.get(authorize_url)
    assert response.status_code == 302, response.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
    return await oauth.callback(
        provider, user.user_id, code=query.get("code"), state=query.get("state")
    )


@dataclass
class Linked:
    """A user's linked mailbox and the worker sending for it."""

    user: User
    mailbox: Mailbox
    worker: SendingWorker


class OAuthMailboxes:
    """Mailboxes of one provider (`outlook`, `gmail`) at `email`, linked against the
    `identity` stand-in and used through the `api` stand-in; the worker and poller that
    send and read for them, and the steps of a flow."""

    def __init__(
        self,
        world: World,
        secrets: SecretBox,
        identity: OAuthStandIn,
        api: ApiStandIn,
        *,
        provider: str,
        email: str,
    ) -> None:
        self.world = world
        self.identity = identity
        self.api = api
        self.provider = provider
        self.email = email
        self.settings = Settings(
            public_base_url="http://127.0.0.1:9", **stand_in_fields(identity, api)
        )
        self.linking = OAuthLinking(
            world.mailboxes,
            secrets,
            endpoints_from_settings(self.settings),
            public_base_url=self.settings.public_base_url,
            clock=world.clock,
        )
        self.tokens = MailboxTokenSources(self.linking, world.mailboxes, clock=world.clock)

    @asynccontextmanager
    async def linked(self, *, user_name: str, login_id: str) -> AsyncIterator[Linked]:
        """A new user's mailbox, linked and active, with a worker closed afterwards."""
        user = await self.world.accounts.create_user(user_name=user_name, login_id=login_id)
        mailbox = await link(self.linking, self.provider, user, self.email)
        assert (mailbox.provider, mailbox.email, mailbox.status) == (
            self.provider,
            self.email,
            "active",
        )
        worker = self.worker()
        try:
            yield Linked(user, mailbox, worker)
        finally:
            await worker.close()

    def worker(self) -> SendingWorker:
        world, settings = self.world, self.settings
        providers = DefaultProviders(
            allow_private_hosts=True,
            tokens=self.tokens,
            graph_url=settings.graph_url,
            gmail_url=settings.gmail_url,
            clock=world.clock,
        )
        tracking = TrackingLinks(
            TokenSigner(derive_tracking_keys([generate_key()])),
            f"https://t.{self.email.rpartition('@')[2]}",
        )
        return SendingWorker(
            world.store,
            world.mailboxes,
            providers,
            settings=WorkerSettings(retry_base_seconds=60.0, lease_seconds=120.0, send_gap=NO_GAP),
            clock=world.clock,
            tracking=tracking,
        )

    def poller(self) -> InboxPoller:
        inboxes = DefaultInboxes(
            allow_private_hosts=True,
            tokens=self.tokens,
            graph_url=self.settings.graph_url,
            gmail_url=self.settings.gmail_url,
            clock=self.world.clock,
        )
        return InboxPoller(self.world.store, self.world.mailboxes, inboxes, clock=self.world.clock)

    async def records(self, linked: Linked, campaign_id: str) -> list[EmailTracking]:
        return (
            await self.world.store.list_tracking(linked.user.id, RecipientQuery(campaign_id))
        ).items

    def refreshes(self) -> int:
        """How many times the identity stand-in was asked to refresh a token."""
        return len([f for f in self.identity.token_requests if f["grant_type"] == "refresh_token"])

    async def campaign_to(self, linked: Linked, csv: str, **fields: Any) -> str:
        """A campaign to every row of `csv`, run to its end: its id."""
        campaign, report = await self.world.campaign(linked.user, linked.mailbox, csv, **fields)
        assert report.accepted == csv.count("\n") - 1
        await self.world.run(linked.worker, until=campaign.end_time, step_minutes=1)
        return campaign.campaign_id

    # The steps.

    async def send_a_campaign_of_three(self, linked: Linked) -> dict[str, EmailTracking]:
        """Three sends through the API, each with its unsubscribe headers: the records by
        recipient."""
        campaign_id = await self.campaign_to(linked, THREE, duration=0.1)
        sent = self.api.sent
        assert {str(m["To"]) for m in sent} == {
            "bob@example.com",
            "carol@example.com",
            "dave@example.com",
        }
        assert len(sent) == 3
        for message in sent:
            assert message["List-Unsubscribe"]
            assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        records = await self.records(linked, campaign_id)
        assert len(records) == 3
        assert {r.status for r in records} == {TrackingStatus.SENT}
        return {r.recipient_email: r for r in records}

    async def an_expired_token_is_refreshed(
        self, linked: Linked
    ) -> tuple[MailboxCredentials, MailboxCredentials, EmailTracking]:
        """The access token expires at the identity provider: the API answers 401, the
        source refreshes once, stores the new access token, and the send goes through.
        The credentials before and after, and the record sent."""
        mailboxes, mailbox = self.world.mailboxes, linked.mailbox
        before = await mailboxes.credentials(linked.user.user_id, mailbox.id)
        assert before.access_token is not None and before.refresh_token is not None
        del self.identity.access_tokens[before.access_token.get_secret_value()]
        refreshes = self.refreshes()
        campaign_id = await self.campaign_to(linked, "email\nerin@example.com\n", duration=0.1)
        assert len(self.api.sent) == 4
        assert len(self.api.seen(self.api.send_path)) == 5  # the refused one, then the sent one
        after = await mailboxes.credentials(linked.user.user_id, mailbox.id)
        assert after.access_token is not None and after.refresh_token is not None
        assert after.access_token.get_secret_value() == self.identity.latest_access_token(
            self.email
        )
        assert after.access_token.get_secret_value() != before.access_token.get_secret_value()
        assert self.refreshes() == refreshes + 1
        [erin] = await self.records(linked, campaign_id)
        assert erin.status is TrackingStatus.SENT
        return before, after, erin

    async def a_reply_and_a_bounce_are_read(self, sent: dict[str, EmailTracking]) -> None:
        """Bob replies and Carol's address bounces; one poll of the inbox records both."""
        received = self.world.clock.now - timedelta(minutes=5)
        bob, carol = sent["bob@example.com"], sent["carol@example.com"]
        self.api.deliver(reply(bob.message_id or "", to=self.email), received_at=received)
        self.api.deliver(
            dsn("carol@example.com", carol.message_id or "", to=self.email),
            received_at=received + timedelta(seconds=1),
        )
        seen = await self.poller().poll_once()
        assert seen == {"reply": 1, "hard_bounce": 1}, seen
        metrics = await self.world.metrics.get_campaign_metrics(bob.campaign_id)
        assert (metrics.total_replied, metrics.total_bounced) == (1, 1)

    async def bob_is_answered_from_the_inbox(self, linked: Linked, bob: EmailTracking) -> str:
        """The user answers Bob's reply from the inbox: it leaves through the provider's API
        in Bob's thread. The Message-ID the answer is known by."""
        settings = self.settings
        providers = DefaultProviders(
            allow_private_hosts=True,
            tokens=self.tokens,
            graph_url=settings.graph_url,
            gmail_url=settings.gmail_url,
            clock=self.world.clock,
        )
        answers = AnswerService(
            self.world.store,
            self.world.inbox,
            self.world.mailboxes,
            providers,
            TrackingLinks(TokenSigner(derive_tracking_keys([generate_key()])), "https://t.x"),
            clock=self.world.clock,
        )
        before = len(self.api.sent)
        answer = await answers.answer(
            linked.user.user_id, bob.campaign_id, bob.id, "Thanks Bob, talk soon."
        )
        assert answer.status == "sent", answer.error
        (message,) = self.api.sent[before:]
        assert message["In-Reply-To"] == "<reply1@example.com>"
        assert message["References"] == f"{bob.message_id} <reply1@example.com>"
        assert message["Subject"] == "Re: Hello Bob" and message["To"] == "bob@example.com"
        assert str(message["Message-ID"]) == answer.message_id  # the id it left under
        return answer.message_id or ""

    async def revoking_the_grant_stops_the_mailbox(self, linked: Linked) -> None:
        """The user revokes the app's access: the mailbox goes to `error`, and nothing
        more leaves it."""
        sent_before = len(self.api.sent)
        self.identity.revoke(self.email)
        campaign_id = await self.campaign_to(linked, "email\ngina@example.com\n", duration=0.1)
        assert len(self.api.sent) == sent_before
        broken = await self.world.mailboxes.get_mailbox(linked.user.user_id, linked.mailbox.id)
        assert broken.status is MailboxStatus.ERROR
        assert broken.status_reason is not None and "reconnect this mailbox" in broken.status_reason
        [gina] = await self.records(linked, campaign_id)
        assert gina.status is not TrackingStatus.SENT

    async def a_long_throttle_is_retried_when_the_api_said(self, linked: Linked) -> None:
        """A 429 with a Retry-After of 15 minutes: the record waits exactly that long, then
        goes out."""
        world, api, worker = self.world, self.api, linked.worker
        api.fail_next(api.send_path, 429, retry_after=900)
        # Three hours: the one send falls within 10-90 % of the window (the planner's
        # jitter), so the retry 15 minutes after it is always before the window closes.
        campaign, _ = await world.campaign(
            linked.user, linked.mailbox, "email\nbob@example.com\n", duration=3
        )
        # Scheduled somewhere in the window: run passes until the throttled attempt happened.
        await self.run_until_the_first_send(worker, campaign.end_time)
        throttled_at = world.clock.now
        [record] = await self.records(linked, campaign.campaign_id)
        assert record.status is TrackingStatus.PENDING
        assert record.attempts == 0  # a throttling is no attempt: it cannot use them up
        assert record.last_error is not None and "retry after 900" in record.last_error
        assert record.scheduled_at == throttled_at + timedelta(seconds=900)
        assert api.sent == []
        world.clock.now = throttled_at + timedelta(seconds=899)
        while await worker.tick():
            pass
        assert api.sent == []
        world.clock.now = throttled_at + timedelta(seconds=900)
        while await worker.tick():
            pass
        assert len(api.sent) == 1
        [record] = await self.records(linked, campaign.campaign_id)
        assert record.status is TrackingStatus.SENT
        assert record.message_id == str(api.sent[0]["Message-ID"])

    async def run_until_the_first_send(self, worker: SendingWorker, deadline: datetime) -> None:
        """Let time pass a minute at a time, the worker doing its passes, until a send
        reached the API (before `deadline`)."""
        while not self.api.seen(self.api.send_path):
            assert self.world.clock.now < deadline
            self.world.clock.advance(minutes=1)
            while await worker.tick():
                pass


async def the_runtime_sends_and_reads(
    tmp_path: Path, identity: OAuthStandIn, api: ApiStandIn, *, provider: str, email: str
) -> None:
    """A whole runtime on a fresh SQLite file links a mailbox, sends a campaign of one
    through the API and reads the reply."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'mailramp.db'}",
        encryption_keys=generate_key(),
        public_base_url="http://127.0.0.1:9",
        allow_private_hosts=True,
        **stand_in_fields(identity, api),
    )
    clock = FakeClock(START)
    runtime = await open_runtime(settings, migrate=True, clock=clock)
    try:
        user = await runtime.accounts.create_user(user_name="Runtime", login_id=f"{provider}-rt")
        mailbox = await link(runtime.oauth, provider, user, email)
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
            while not api.sent and clock.now < campaign.end_time:
                while await worker.tick():
                    pass
                clock.advance(minutes=1)
        finally:
            await worker.close()
        assert [str(m["To"]) for m in api.sent] == ["bob@example.com"]
        assert api.sent[0]["List-Unsubscribe"]
        [record] = (
            await runtime.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
        ).items
        assert record.status is TrackingStatus.SENT
        assert record.message_id == str(api.sent[0]["Message-ID"])

        five_minutes_ago = clock.now - timedelta(minutes=5)
        api.deliver(reply(record.message_id or "", to=email), received_at=five_minutes_ago)
        assert await runtime.inbox_poller().poll_once() == {"reply": 1}
    finally:
        await runtime.close()
