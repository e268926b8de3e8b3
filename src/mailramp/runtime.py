"""The composition root: settings → store, keys and services, checked before any use.

Everything that starts mailramp (the web app, the CLI, db_manager) goes through
`open_runtime`, so a wrong database or a missing key fails at start-up with a message that
says what to do, never later in the middle of a send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, fields
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from mailramp import __version__
from mailramp.accounts.service import AccountService
from mailramp.auth.admin import AdminService
from mailramp.auth.clerk import ClerkFrontend, ClerkVerifier, clerk_frontend
from mailramp.auth.service import AuthService
from mailramp.campaigns.service import CampaignService
from mailramp.config import Settings
from mailramp.conversations.answers import AnswerService
from mailramp.conversations.inbox import InboxService
from mailramp.conversations.leads import LeadService
from mailramp.deliverability.pool import WarmupPool
from mailramp.deliverability.service import DeliverabilityService
from mailramp.errors import ConfigurationError, MailboxTestFailed, SecretKeyError, ValidationError
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.dns import DnsResolver, parse_servers
from mailramp.kit.mail_dns import MailDns
from mailramp.kit.marked_ids import WARMUP_KEY, WarmupMarker
from mailramp.kit.marked_ids import new_key as new_warmup_key
from mailramp.kit.periodic import Periodic
from mailramp.kit.secrets import InstanceSecrets, KeyFile, SecretBox
from mailramp.kit.signing import TRACKING_KEYS, TokenSigner, load_tracking_keys
from mailramp.legacy.service import LegacyService
from mailramp.mailboxes.domain_checks import DomainChecks
from mailramp.mailboxes.models import NO_GAP, Mailbox, SendGap
from mailramp.mailboxes.service import MailboxService
from mailramp.mailboxes.tracking_domain import TrackingDomains, public_host
from mailramp.mailboxes.transport import InboxFactory, ProviderFactory
from mailramp.metrics.service import MetricsService
from mailramp.oauth import OAuthLinking, endpoints_from_settings
from mailramp.oauth.tokens import MailboxTokenSources
from mailramp.observability import Telemetry
from mailramp.providers.check import check_mailbox
from mailramp.providers.registry import DefaultInboxes, DefaultProviders
from mailramp.providers.webhooks import HttpWebhookPoster
from mailramp.sending.heartbeats import WorkerDirectory
from mailramp.sending.reconcile import RECONCILE_INTERVAL, Reconciler
from mailramp.sending.service import SendingService
from mailramp.sending.worker import SendingWorker, WorkerSettings
from mailramp.storage import Store
from mailramp.storage.sql import SqlStore
from mailramp.storage.sql.migrate import downgrade, head_revision, known_revisions, upgrade
from mailramp.suppression.service import SuppressionService
from mailramp.tracking.classify import MachineRules
from mailramp.tracking.inbox import InboxPoller
from mailramp.tracking.links import TrackingLinks
from mailramp.tracking.networks import KnownNetworks
from mailramp.tracking.service import EventMetrics, TrackingService, unmeasured
from mailramp.webhooks.dispatcher import WebhookDispatcher
from mailramp.webhooks.repository import WebhookPoster
from mailramp.webhooks.service import WebhookService

log = logging.getLogger(__name__)
INSTANCE_SECRETS = (TRACKING_KEYS, WARMUP_KEY)
"""The installation's own secrets, stored encrypted under the key set (rotated with it)."""
UPKEEP_INTERVAL_SECONDS = 60.0
"""How often a worker looks for upkeep due (a pass does a bounded amount of work)."""
ROLL_UP_INTERVAL_SECONDS = 300.0
"""How often a worker rolls up every mailbox's recent history (the brakes' figures)."""

STARTUP_SECRET_SAMPLE = 20

WEBHOOK_INTERVAL_SECONDS = 1.0
SETTLE_INTERVAL_SECONDS = 5.0
"""How often a worker decides the opens and clicks whose settling window has passed (more
often when the window is shorter than 15 s)."""
"""How long a worker rests between two passes of pushing events to webhook endpoints."""
WEBHOOK_SLICE_SECONDS = 0.5
"""How long one pass may deliver: a webhook backlog takes at most a third of a worker's
time, the rest stays with sending and tracking (docs/performance.md measures it)."""


@dataclass
class Services:
    """Every domain service, on one store and one clock. `build_services` is the one place
    they are wired together (the app, the CLI, db_manager and the tests all use it)."""

    store: Store
    clock: Clock
    accounts: AccountService
    mailboxes: MailboxService
    campaigns: CampaignService
    metrics: MetricsService
    legacy: LegacyService
    sending: SendingService
    suppression: SuppressionService
    tracking: TrackingService
    auth: AuthService
    deliverability: DeliverabilityService
    leads: LeadService
    inbox: InboxService
    webhooks: WebhookService
    webhook_dispatcher: WebhookDispatcher
    workers: WorkerDirectory
    admin: AdminService


def send_gap(settings: Settings) -> SendGap:
    """The random pause between two emails of one mailbox the settings ask for."""
    return SendGap(settings.send_gap_min_seconds, settings.send_gap_max_seconds)


def machine_rules(settings: Settings) -> MachineRules:
    """How tracking tells people from machines, as the settings say."""
    return MachineRules(
        burst=timedelta(seconds=settings.scanner_burst_seconds),
        settle=timedelta(seconds=settings.settle_seconds),
        networks=KnownNetworks.load(settings.known_networks_file),
    )


def build_services(
    store: Store,
    secrets: SecretBox,
    signer: TokenSigner,
    *,
    clock: Clock = utc_now,
    events: EventMetrics | None = None,
    signup_open: bool = True,
    tracking_domains: TrackingDomains | None = None,
    domain_checks: DomainChecks | None = None,
    send_gap: SendGap = NO_GAP,
    ramp_new_mailboxes: bool = False,
    allow_private_hosts: bool = False,
    webhook_poster: Callable[[], WebhookPoster] | None = None,
    machine_rules: MachineRules | None = None,
) -> Services:
    """The services on `store`, reading `clock`; `events` counts tracking events;
    `tracking_domains` checks mailboxes' own tracking domains in DNS and `domain_checks`
    their sending domains; plans leave `send_gap` between two sends of a mailbox; new
    mailboxes ramp up unless linked as warm when `ramp_new_mailboxes`."""
    accounts = AccountService(store, clock=clock)
    campaigns = CampaignService(store, clock=clock, send_gap=send_gap)
    mailboxes = MailboxService(
        store,
        secrets,
        in_use=campaigns,
        clock=clock,
        tracking_domains=tracking_domains,
        domain_checks=domain_checks,
        ramp_new_mailboxes=ramp_new_mailboxes,
    )
    tracking = TrackingService(
        store, signer, clock=clock, metrics=events or unmeasured(), rules=machine_rules
    )
    dispatcher = WebhookDispatcher(
        store,
        tracking,
        secrets,
        webhook_poster or partial(HttpWebhookPoster, allow_private_hosts=allow_private_hosts),
        clock=clock,
    )
    auth = AuthService(store, accounts, clock=clock, signup_open=signup_open)
    return Services(
        store=store,
        clock=clock,
        accounts=accounts,
        mailboxes=mailboxes,
        campaigns=campaigns,
        metrics=MetricsService(store, clock=clock),
        legacy=LegacyService(store, clock=clock),
        sending=SendingService(store, clock=clock, send_gap=send_gap),
        suppression=SuppressionService(store, clock=clock),
        tracking=tracking,
        auth=auth,
        deliverability=DeliverabilityService(store, mailboxes, campaigns, clock=clock),
        leads=LeadService(store, tracking, clock=clock),
        inbox=InboxService(store, tracking, clock=clock),
        webhooks=WebhookService(
            store, secrets, dispatcher, clock=clock, allow_private_hosts=allow_private_hosts
        ),
        webhook_dispatcher=dispatcher,
        workers=WorkerDirectory(store, clock=clock),
        admin=AdminService(store, accounts, auth, clock=clock),
    )


@dataclass
class Runtime(Services):
    """A running mailramp: its settings, keys and adapters around the services."""

    settings: Settings
    secrets: SecretBox
    tracking_links: TrackingLinks
    clerk: ClerkVerifier | None
    clerk_frontend: ClerkFrontend | None
    oauth: OAuthLinking
    telemetry: Telemetry
    """This process's Prometheus metrics (GET /metrics)."""
    warmup_marker: WarmupMarker
    """Makes and recognises warm-up emails' Message-IDs (an instance secret's key)."""

    def worker(
        self, *, providers: ProviderFactory | None = None, worker_id: str | None = None
    ) -> SendingWorker:
        """A sending worker on this runtime's store, paced by the settings."""
        settings = self.settings
        return SendingWorker(
            self.store,
            self.mailboxes,
            providers or self.providers(),
            settings=WorkerSettings(
                lease_seconds=settings.worker_lease_seconds,
                batch_size=settings.worker_batch_size,
                in_flight_per_mailbox=settings.worker_in_flight_per_mailbox,
                max_attempts=settings.send_max_attempts,
                retry_base_seconds=settings.send_retry_base_seconds,
                poll_seconds=settings.worker_poll_seconds,
                send_gap=send_gap(settings),
            ),
            clock=self.clock,
            worker_id=worker_id,
            tracking=self.tracking_links,
            metrics=self.telemetry,
            version=__version__,
        )

    def providers(self) -> DefaultProviders:
        """What sends for each mailbox: SMTP, Graph or the Gmail API, as configured."""
        return DefaultProviders(**self._adapter_options())

    def answers(self, *, providers: ProviderFactory | None = None) -> AnswerService:
        """Answering from the inbox, through each mailbox's own provider."""
        return AnswerService(
            self.store,
            self.inbox,
            self.mailboxes,
            providers or self.providers(),
            self.tracking_links,
            clock=self.clock,
        )

    def inboxes(self) -> DefaultInboxes:
        """What reads each mailbox's inbox: IMAP, Graph or the Gmail API."""
        return DefaultInboxes(**self._adapter_options())

    def _adapter_options(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "allow_private_hosts": settings.allow_private_hosts,
            "allow_cleartext_login": settings.allow_cleartext_login,
            "tokens": self.oauth_tokens(),
            "graph_url": settings.graph_url,
            "gmail_url": settings.gmail_url,
            "smtp_timeout_seconds": settings.smtp_timeout_seconds,
            "clock": self.clock,
        }

    async def check_mailbox(self, user_id: str, mailbox_id: str) -> dict[str, dict[str, object]]:
        """ "Test connection": log in to the mailbox's servers or API, send nothing."""
        mailbox = await self.mailboxes.get_mailbox(user_id, mailbox_id)
        credentials = await self.mailboxes.credentials(user_id, mailbox_id)
        return await check_mailbox(
            mailbox, credentials, providers=self.providers(), inboxes=self.inboxes()
        )

    async def activate_mailbox(self, user_id: str, mailbox_id: str) -> Mailbox:
        """Send from a mailbox again, once a test of its servers (or API) passes: one that
        cannot log in stays as it is (MailboxTestFailed says what failed)."""
        results = await self.check_mailbox(user_id, mailbox_id)
        if not all(result["ok"] for result in results.values()):
            raise MailboxTestFailed(results)
        return await self.mailboxes.activate(user_id, mailbox_id)

    def oauth_tokens(self) -> MailboxTokenSources:
        """Token sources for OAuth mailboxes: stored tokens, refreshed through `oauth`."""
        return MailboxTokenSources(self.oauth, self.mailboxes, clock=self.clock)

    def upkeep(self) -> list[Periodic]:
        """What a worker does now and then besides sending and reading inboxes: check
        mailboxes' sending domains in DNS again once a day, roll up their histories, apply
        the brakes."""
        return [
            Periodic(
                "domain checks",
                self.mailboxes.recheck_domains,
                interval_seconds=UPKEEP_INTERVAL_SECONDS,
            ),
            Periodic(
                "history roll-up",
                self.deliverability.roll_up,
                interval_seconds=ROLL_UP_INTERVAL_SECONDS,
            ),
            Periodic(
                "brakes", self.deliverability.apply_brakes, interval_seconds=UPKEEP_INTERVAL_SECONDS
            ),
            Periodic(
                "warm-up", self.warmup_pool().run_once, interval_seconds=UPKEEP_INTERVAL_SECONDS
            ),
            Periodic(
                "settling",
                self.tracking.settle,
                interval_seconds=min(SETTLE_INTERVAL_SECONDS, self.settings.settle_seconds / 3),
            ),
            Periodic(
                "reconciliation",
                Reconciler(self.store, clock=self.clock).run_once,
                interval_seconds=RECONCILE_INTERVAL.total_seconds(),
            ),
            Periodic(
                "webhooks",
                partial(self.webhook_dispatcher.run_once, seconds=WEBHOOK_SLICE_SECONDS),
                interval_seconds=WEBHOOK_INTERVAL_SECONDS,
            ),
        ]

    def inbox_poller(self, *, inboxes: InboxFactory | None = None) -> InboxPoller:
        """An inbox poller for replies and bounces, on this runtime's store."""
        return InboxPoller(
            self.store,
            self.mailboxes,
            inboxes or self.inboxes(),
            clock=self.clock,
            interval_seconds=self.settings.inbox_poll_interval_seconds,
            metrics=self.telemetry,
            warmup=self.warmup_marker,
        )

    def warmup_pool(
        self,
        *,
        providers: ProviderFactory | None = None,
        inboxes: InboxFactory | None = None,
        clock: Clock | None = None,
    ) -> WarmupPool:
        """The warm-up pool on this runtime's store: plans, sends and tends warm-up emails
        (by the runtime's clock unless `clock` is given: the demo's compressed day)."""
        return WarmupPool(
            self.store,
            self.mailboxes,
            providers or self.providers(),
            inboxes or self.inboxes(),
            self.warmup_marker,
            clock=clock or self.clock,
        )

    @property
    def backend(self) -> str:
        """The database kind: sqlite, postgresql or mongodb."""
        return self.store.backend

    async def database_version(self) -> str | None:
        """The applied schema revision once the database answered (None: empty); raises if
        it does not answer."""
        await self.store.ping()
        return await self.store.schema_version()

    async def metrics_exposition(self) -> bytes:
        """This process's Prometheus metrics, with the queue depth and the mailboxes' health
        read now."""
        return await self.telemetry.exposition(
            self.store, now=self.clock(), mailboxes=self.deliverability.gauges
        )

    async def rotate_secrets(self) -> int:
        """Re-encrypt every stored secret under the newest key — mailbox passwords and
        tokens, webhook signing secrets, the tracking links' signing keys and the warm-up
        marker's key; returns how many were re-encrypted."""
        report = await self.mailboxes.rotate_secrets()
        webhooks = await self.webhooks.rotate_keys()
        instance = InstanceSecrets(self.store, self.secrets, clock=self.clock)
        rotated = [await instance.rotate(name) for name in INSTANCE_SECRETS]
        return report.rotated + webhooks + sum(rotated)

    async def close(self) -> None:
        """Release the database connections (and the webhooks' HTTP ones)."""
        await self.webhook_dispatcher.close()
        await self.store.close()


def open_mongodb(url: str) -> Store:
    """A MongoDB database other than the one mailramp runs on (the previous application's,
    to migrate its legacy campaigns from)."""
    from mailramp.storage.mongo import MongoStore

    return MongoStore.from_url(url)


def open_store(settings: Settings) -> Store:
    """The storage adapter the database URL's scheme names: SQL for sqlite:// and
    postgresql://, MongoDB for mongodb:// and mongodb+srv://."""
    if settings.backend == "mongodb":
        from mailramp.storage.mongo import MongoStore

        return MongoStore.from_url(
            settings.database_url,
            max_pool_size=settings.db_pool_size + settings.db_max_overflow,
            write_concern=settings.mongodb_write_concern,
        )
    return SqlStore.from_url(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )


def schema_head(backend: str) -> str:
    """The newest schema revision this mailramp knows on `backend`: the Alembic head on
    SQL, the document layout version on MongoDB."""
    if backend == "mongodb":
        from mailramp.storage.mongo.base import SCHEMA_VERSION

        return SCHEMA_VERSION
    return head_revision()


def schema_is_newer(backend: str, version: str | None) -> bool:
    """Whether the database was migrated by a newer mailramp than this one (a revision this
    code does not know), as during a rolling deploy."""
    if version is None:
        return False
    if backend == "mongodb":
        from mailramp.storage.mongo.base import KNOWN_VERSIONS

        return version not in KNOWN_VERSIONS
    return version not in known_revisions()


def newer_schema_message(backend: str, current: str | None) -> str:
    """What to do when the database was migrated by a newer mailramp than this one."""
    return (
        f"the database's schema is at {current}, newer than this mailramp {__version__} "
        f"knows (its newest: {schema_head(backend)}): run the newer mailramp that migrated "
        "it, or undo its migrations with that version's `mailramp db downgrade` "
        "(docs/deployment.md#upgrades-and-rollbacks)"
    )


async def migrate_store(store: Store) -> str:
    """Apply pending migrations (SQL: Alembic; MongoDB: indexes and the layout version);
    returns the revision now in place."""
    # Alembic talks to the engine directly: a database that cannot be reached is reported
    # by the store's own ping first, as the one clear error it is everywhere else.
    await store.ping()
    current = await store.schema_version()
    if schema_is_newer(store.backend, current):
        raise ConfigurationError(newer_schema_message(store.backend, current))
    if isinstance(store, SqlStore):
        await upgrade(store.engine)
    else:
        from mailramp.storage.mongo import MongoStore

        if not isinstance(store, MongoStore):
            raise ConfigurationError(f"no migrations for the {store.backend!r} backend")
        await store.migrate()
    version = await store.schema_version()
    assert version is not None
    return version


async def downgrade_store(store: Store, revision: str) -> str:
    """Undo the migrations after `revision` (SQL: each migration's downgrade, what it added
    is dropped; MongoDB: the layout version is recorded back); returns the revision now in
    place."""
    await store.ping()
    if isinstance(store, SqlStore):
        if revision not in known_revisions():
            known = ", ".join(sorted(known_revisions()))
            raise ValidationError(
                "revision", f"{revision!r} is no revision of this mailramp ({known})"
            )
        await downgrade(store.engine, revision)
    else:
        from mailramp.storage.mongo import MongoStore

        if not isinstance(store, MongoStore):
            raise ConfigurationError(f"no migrations for the {store.backend!r} backend")
        await store.downgrade(revision)
    version = await store.schema_version()
    assert version is not None
    return version


def migration_report(store: Store) -> list[str]:
    """What the `migrate_store` just run has to tell the operator: on MongoDB the index
    report (created, adopted, each conflict with its way out, kept); nothing on SQL, whose
    migrations own every index."""
    if isinstance(store, SqlStore):
        return []
    from mailramp.storage.mongo import MongoStore

    return store.index_report.lines() if isinstance(store, MongoStore) else []


def mailbox_service(store: Store, secrets: SecretBox, *, clock: Clock = utc_now) -> MailboxService:
    """The MailboxService, told which campaigns still send from a mailbox."""
    return MailboxService(store, secrets, in_use=CampaignService(store, clock=clock), clock=clock)


async def open_runtime(
    settings: Settings | None = None, *, migrate: bool | None = None, clock: Clock = utc_now
) -> Runtime:
    """Open the store, bring or check its schema, load and check the keys, build services."""
    settings = settings or Settings()
    store = open_store(settings)
    try:
        if settings.auto_migrate if migrate is None else migrate:
            await migrate_store(store)
        else:
            await _require_current_schema(store)
        keys = load_key_set(settings, has_existing_secrets=await _has_secrets(store))
        secrets = SecretBox(keys)
        mailboxes = mailbox_service(store, secrets, clock=clock)
        await mailboxes.check_secrets(sample=STARTUP_SECRET_SAMPLE)
        instance = InstanceSecrets(store, secrets, clock=clock)
        signer = TokenSigner(await load_tracking_keys(instance, encryption_keys=keys))
        marker = WarmupMarker(await instance.get_or_create(WARMUP_KEY, new_warmup_key))
    except BaseException:
        await store.close()
        raise
    telemetry = Telemetry(schema=schema_head(settings.backend))
    services = build_services(
        store,
        secrets,
        signer,
        clock=clock,
        events=telemetry,
        signup_open=settings.signup_open,
        tracking_domains=TrackingDomains(
            public_host(settings.public_base_url), DnsResolver(parse_servers(settings.dns_servers))
        ),
        domain_checks=DomainChecks(
            MailDns(parse_servers(settings.dns_servers)), public_host(settings.public_base_url)
        ),
        send_gap=send_gap(settings),
        ramp_new_mailboxes=settings.ramp_new_mailboxes,
        allow_private_hosts=settings.allow_private_hosts,
        machine_rules=machine_rules(settings),
    )
    return Runtime(
        **{field.name: getattr(services, field.name) for field in fields(Services)},
        settings=settings,
        secrets=secrets,
        tracking_links=TrackingLinks(signer, settings.public_base_url),
        clerk=clerk_verifier(settings),
        oauth=OAuthLinking(
            services.mailboxes,
            secrets,
            endpoints_from_settings(settings),
            public_base_url=settings.public_base_url,
            clock=clock,
        ),
        clerk_frontend=clerk_frontend(
            settings.clerk_publishable_key, settings.clerk_frontend_api_url
        ),
        telemetry=telemetry,
        warmup_marker=marker,
    )


async def _require_current_schema(store: Store) -> None:
    version, head = await store.schema_version(), schema_head(store.backend)
    if schema_is_newer(store.backend, version):
        raise ConfigurationError(newer_schema_message(store.backend, version))
    if version != head:
        raise ConfigurationError(
            f"the database schema is at {version or 'nothing (empty database)'} but this "
            f"mailramp needs {head}: run `mailramp db upgrade`"
        )


async def _has_secrets(store: Store) -> bool:
    async with aclosing(store.iter_mailbox_secrets()) as secrets:
        async for _ in secrets:
            return True
    # The tracking keys too: links in mail already sent need them.
    return await store.get_instance_secret(TRACKING_KEYS) is not None


def clerk_verifier(settings: Settings) -> ClerkVerifier | None:
    """Clerk sign-in, when a PEM key, a JWKS URL or a publishable key is configured (the
    Frontend API named by the publishable key serves the JWKS)."""
    pem = settings.clerk_jwt_key.get_secret_value() if settings.clerk_jwt_key else None
    jwks_url = settings.clerk_jwks_url
    front = clerk_frontend(settings.clerk_publishable_key, settings.clerk_frontend_api_url)
    if not pem and not jwks_url and front is not None:
        jwks_url = front.origin + "/.well-known/jwks.json"
    if not pem and not jwks_url:
        return None
    parties = [p.strip() for p in (settings.clerk_authorized_parties or "").split(",") if p.strip()]
    # Without a list, only tokens issued to this server's own pages are accepted (their
    # `azp` is its public origin): never the sessions of another site on the same instance.
    parties = parties or [settings.public_base_url]
    return ClerkVerifier(pem_key=pem, jwks_url=jwks_url, authorized_parties=parties)


def load_key_set(settings: Settings, *, has_existing_secrets: bool) -> list[str]:
    """The key set from MAILRAMP_ENCRYPTION_KEYS, else from the key file, which is generated
    on first start — but never when the database already holds secrets, since a new key
    could not decrypt them."""
    keys = settings.encryption_key_list()
    if keys is not None:
        SecretBox(keys)  # validates them
        return keys
    key_file = KeyFile(Path(settings.encryption_key_file).absolute())
    if key_file.exists():
        return key_file.read()
    if has_existing_secrets:
        raise SecretKeyError(
            f"the database holds encrypted secrets but the key file {key_file.path} "
            "does not exist: restore it from your backup, or set MAILRAMP_ENCRYPTION_KEYS"
        )
    return key_file.create()
