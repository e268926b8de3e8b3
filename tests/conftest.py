"""Shared fixtures: real databases for every backend, services on them, keys.

Strict mode (`MAILRAMP_TEST_STRICT=1`, set by scripts/test and CI): a service the tests need
that cannot be started is a failure, never a skip.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mailramp.accounts.models import User
from mailramp.campaigns.models import Campaign
from mailramp.kit.ids import new_object_id
from mailramp.kit.secrets import SecretBox, generate_key
from mailramp.kit.signing import TokenSigner
from mailramp.mailboxes.models import Mailbox
from mailramp.runtime import Services, build_services
from mailramp.storage import Store
from mailramp.storage.sql import SqlStore
from mailramp.storage.sql.migrate import upgrade
from mailramp.tracking.models import EmailTracking
from tests.support.clock import FakeClock
from tests.support.demo_run import DemoRuns
from tests.support.dns_server import DnsServer, DnsUnavailable
from tests.support.dovecot import Dovecot, DovecotUnavailable
from tests.support.loops import run_blocking
from tests.support.postgres import PostgresServer, PostgresUnavailable
from tests.support.processes import SUITE_SETTINGS

os.environ.update(SUITE_SETTINGS)  # Settings() read in this process too
STRICT = os.environ.get("MAILRAMP_TEST_STRICT") == "1"
BACKENDS = ["sqlite", "postgresql"]
TEMPLATE_DATABASE = f"mailramp_template_{os.getpid()}"
"""Per test session: sessions sharing one server (MAILRAMP_TEST_POSTGRES_URL) never drop
each other's template."""
TRACKING_KEY = b"tests-tracking-signing-key-00000"
DEMO_RUNS = pytest.StashKey[DemoRuns]()
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")


@pytest.hookimpl(trylast=True)  # after -k and -m deselected theirs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests against a real external service (Clerk, Microsoft, Google, MongoDB) run only
    when its environment variable is set; otherwise they are deselected, not skipped.

    Tests that use the session's demo runs go last, and the runs start now, in the
    background (tests/support/demo_run.py): they mostly wait, while the others run."""
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("real_service")
        wanted = marker is None or bool(os.environ.get(marker.args[0]))
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    demo = [item for item in items if "demo_runs" in getattr(item, "fixturenames", ())]
    if config.option.collectonly:
        return
    if XDIST_WORKER:
        # Under pytest-xdist every worker collects every test, and which one runs a test is
        # decided later, in this order: the demo tests form one group (`--dist loadgroup`,
        # marked below), handed out first; the worker that gets them starts the runs (the
        # `demo_runs` fixture) and waits for them while the others run the long tests, then
        # the rest (a long test last would leave the other workers idle at the end).
        long = [item for item in items if item.get_closest_marker("long") and item not in demo]
        items[:] = demo + long + [item for item in items if item not in demo and item not in long]
        return
    if demo:
        items[:] = [item for item in items if item not in demo] + demo
        config.stash[DEMO_RUNS] = _demo_runs()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_itemcollected(item: pytest.Item) -> None:
    if XDIST_WORKER and "demo_runs" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.xdist_group("demo"))


def _demo_runs() -> DemoRuns:
    return DemoRuns(Path(tempfile.mkdtemp(prefix="mailramp-demo-runs-"))).start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    runs = session.config.stash.get(DEMO_RUNS, None)
    if runs is not None:
        runs.stop()


def _unavailable(reason: str) -> None:
    if STRICT:
        pytest.fail(f"strict mode: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class PostgresTarget:
    """Where PostgreSQL tests make their databases."""

    admin_url: str
    host_url: str  # without a database name

    def url(self, database: str) -> str:
        return f"{self.host_url}/{database}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresTarget]:
    """A PostgreSQL server with a migrated template database."""
    given = os.environ.get("MAILRAMP_TEST_POSTGRES_URL")
    server = None
    if given:
        admin_url = given
    else:
        try:
            server = PostgresServer.start()
        except PostgresUnavailable as error:
            _unavailable(str(error))
        assert server is not None
        admin_url = server.admin_url
    host_url = admin_url.rsplit("/", 1)[0]
    target = PostgresTarget(admin_url=admin_url, host_url=host_url)
    run_blocking(_make_template(target))
    try:
        yield target
    finally:
        if server is not None:
            server.stop()
        else:
            run_blocking(_admin(target, f"DROP DATABASE IF EXISTS {TEMPLATE_DATABASE}"))


async def _admin(target: PostgresTarget, *statements: str) -> None:
    connection = await asyncpg.connect(target.admin_url.replace("postgresql://", "postgres://"))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def _make_template(target: PostgresTarget) -> None:
    await _admin(
        target,
        f"DROP DATABASE IF EXISTS {TEMPLATE_DATABASE}",
        f"CREATE DATABASE {TEMPLATE_DATABASE}",
    )
    store = SqlStore.from_url(target.url(TEMPLATE_DATABASE))
    try:
        await upgrade(store.engine)
    finally:
        await store.close()


_database_numbers = itertools.count()


async def new_postgres_database(target: PostgresTarget, *, migrated: bool = True) -> str:
    """A fresh database, migrated (a copy of the template) or empty; returns its URL."""
    name = f"mailramp_test_{os.getpid()}_{next(_database_numbers)}"
    template = TEMPLATE_DATABASE if migrated else "template0"
    await _admin(target, f"CREATE DATABASE {name} TEMPLATE {template}")
    return target.url(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that tests copy instead of migrating again."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"

    async def make() -> None:
        store = SqlStore.from_url(f"sqlite:///{path}")
        try:
            await upgrade(store.engine)
        finally:
            await store.close()

    run_blocking(make())
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """The URL of a fresh, migrated database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "mailramp.db"
        path.write_bytes(sqlite_template.read_bytes())
        return f"sqlite:///{path}"
    target: PostgresTarget = request.getfixturevalue("postgres")
    return run_blocking(new_postgres_database(target))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    """A Store on a fresh database."""
    store = SqlStore.from_url(database_url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def key() -> str:
    return generate_key()


@pytest.fixture
def secret_box(key: str) -> SecretBox:
    return SecretBox([key])


@pytest.fixture
def clock() -> FakeClock:
    """The services' clock: Monday 2027-03-01 09:00 UTC until the test moves it."""
    return FakeClock()


def services_on(store: Store, secret_box: SecretBox, clock: FakeClock) -> Services:
    """Every service on `store`, reading `clock`, wired as the app wires them."""
    return build_services(store, secret_box, TokenSigner([TRACKING_KEY]), clock=clock)


@pytest.fixture
def services(store: SqlStore, secret_box: SecretBox, clock: FakeClock) -> Services:
    return services_on(store, secret_box, clock)


# -- builders for tests: one user / mailbox / campaign with sensible defaults ---------------

_serial = itertools.count(1)


async def make_user(services: Services, **fields: object) -> User:
    """A new user with unique login id and email."""
    n = next(_serial)
    values: dict[str, object] = {
        "user_name": f"User {n}",
        "login_id": f"user{n}@example.com",
        "email": f"user{n}@example.com",
    }
    values.update(fields)
    return await services.accounts.create_user(**values)  # type: ignore[arg-type]


async def make_mailbox(services: Services, user: User, **fields: object) -> Mailbox:
    """A linked Outlook mailbox for `user`."""
    n = next(_serial)
    values: dict[str, object] = {
        "email": f"sender{n}@example.com",
        "provider": "outlook",
        "access_token": f"token-{n}",
    }
    values.update(fields)
    return await services.mailboxes.create_mailbox(user.user_id, **values)


async def make_campaign(
    services: Services, user: User, mailbox: Mailbox, **fields: object
) -> Campaign:
    """A scheduled campaign starting in an hour by the services' clock, for 24 hours."""
    n = next(_serial)
    values: dict[str, object] = {
        "mailbox_id": mailbox.mailbox_id,
        "campaign_name": f"Campaign {n}",
        "subject": "Hello",
        "message": "Email body",
        "duration": 24,
        "start_time": services.clock() + timedelta(hours=1),
        "total_recipients": 10,
    }
    values.update(fields)
    return await services.campaigns.create_campaign(user.user_id, **values)


def make_email(campaign: Campaign, recipient_email: str, **fields: Any) -> EmailTracking:
    """A new email of `campaign` to `recipient_email` (not stored): created and updated at
    the campaign's creation unless `fields` say otherwise."""
    values: dict[str, Any] = {
        "id": new_object_id(),
        "campaign_id": campaign.campaign_id,
        "user_id": campaign.user_id,
        "mailbox_id": campaign.mailbox_id,
        "recipient_email": recipient_email,
        "created_at": campaign.created_at,
        "updated_at": campaign.created_at,
    }
    return EmailTracking(**(values | fields))


@pytest.fixture(scope="session")
def demo_runs(request: pytest.FixtureRequest) -> DemoRuns:
    """The session's demo runs, started at collection (tests/support/demo_run.py), or here
    in the pytest-xdist worker that runs the demo tests."""
    stash = request.config.stash
    if DEMO_RUNS not in stash:
        stash[DEMO_RUNS] = _demo_runs()
    return stash[DEMO_RUNS]


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """A real IMAP server with two accounts, ann@acme.com and zed@acme.com, both with the
    password imap-password."""
    try:
        server = Dovecot.start({"ann@acme.com": "imap-password", "zed@acme.com": "imap-password"})
    except DovecotUnavailable as error:
        _unavailable(str(error))
        raise
    try:
        yield server
    finally:
        server.stop()


# The test zone (all under `.example`): mailramp's public host, and the names users give as
# tracking domains — one CNAME to it, one through a second hop, one flattened to its
# address, one CNAME elsewhere, one address elsewhere. Any other name is NXDOMAIN.
PUBLIC_HOST = "track.mailramp.example"
ZONE_ADDRESSES = {
    PUBLIC_HOST: "127.0.0.1",
    "moved.mailramp.example": "127.0.0.2",
    "other.mailramp.example": "192.0.2.7",
    "flat.acme.example": "127.0.0.1",
    "wrong.acme.example": "192.0.2.8",
}
ZONE_ALIASES = {
    "links.acme.example": PUBLIC_HOST,
    "hop.acme.example": "links.acme.example",
    "go.acme.example": "other.mailramp.example",
}


@pytest.fixture(scope="session")
def dns_zone() -> Iterator[DnsServer]:
    """A real DNS server on loopback serving the test zone above."""
    try:
        server = DnsServer.start(addresses=ZONE_ADDRESSES, aliases=ZONE_ALIASES)
    except DnsUnavailable as error:
        _unavailable(str(error))
        raise
    try:
        yield server
    finally:
        server.stop()


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, driven by Playwright (no browser download). One per module:
    Playwright's sync API keeps an event loop running in this thread while it is open."""
    import shutil

    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        _unavailable("chromium not found; run scripts/install-services (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
