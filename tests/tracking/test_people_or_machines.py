"""People or machines, told apart by `mailramp serve` itself (issue 25's acceptance scenario).

A real HTML campaign (two links, the unsubscribe link, the open pixel) is sent through the
worker to an SMTP server on loopback, eight recipients for each of six kinds of reader; what
each kind does with the message it received is replayed over HTTP against `mailramp serve`,
whose own worker settles every request (this process never settles one):

1. Apple Mail Privacy Protection: the pixel, 1-60 s after delivery, as `Mozilla/5.0` from
   Apple's 17.0.0.0/8;
2. Gmail's image proxy: the pixel, 30 s-2 h after, as GoogleImageProxy from 66.249.8x.y;
3. a browser-like link scanner: 20 s-10 min after, with Chrome's user agent from a cloud
   address no list names, the pixel and every link (the unsubscribe links too) within a
   second;
4. a HEAD-then-GET gateway (Safe-Links-like): 20 s-10 min after, HEAD then GET 0.1-0.5 s
   later on every link, never the pixel, a browser's user agent, one address;
5. people: the pixel from their mail client 5 s-2 h after, then one link from their
   browser 2-60 s later, from a home address;
6. people who then click the other link too, a minute later.

Groups 5 and 6 are the people who opened and who clicked; nobody else did. Precision and
recall of human opens and of human clicks (the tracking records' `human_opened_at` and
`human_clicked_at`) are printed with what the rules said for each group, and held to 0.95;
the campaign's counters equal their recomputation from the event log; nobody is
unsubscribed or suppressed.

The server's clock is injected rather than waited for: the server runs under libfaketime,
which reads an absolute moment from a file at every call (FAKETIME_TIMESTAMP_FILE,
FAKETIME_NO_CACHE), so its clock stands still at the moment the test last wrote, and two
hours of requests take seconds. Each request is made with the clock at the moment planned
for it (a stopped clock: however slow the machine, a burst stays a burst), and each logged
event is checked to carry exactly that moment. The moments are this process's own, so the
clocks agree under the guard run's `faketime '+1100 days'` too (the FAKETIME the server
would inherit, which libfaketime prefers to the file, is dropped). The server's worker runs
its jobs on the real monotonic clock; once the clock is moved past the last settling
window it settles everything by itself within seconds. The sending domain is marked as
checked in DNS first (`domain_checked` says why).

A second test: X-Forwarded-For is believed from a trusted proxy only
(MAILRAMP_TRUSTED_PROXIES).

Reproduce: MAILRAMP_TEST_STRICT=1 .venv/bin/pytest -q -s -p no:cacheprovider
tests/tracking/test_people_or_machines.py (MAILRAMP_TEST_SEED=N draws another timeline);
under the guard run's clock, prefix FAKETIME_DONT_FAKE_MONOTONIC=1
PYTHONPATH=$PWD/tests/support/faketime faketime '+1100 days'.
"""

from __future__ import annotations

import asyncio
import glob
import html
import os
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mailramp.config import Settings
from mailramp.metrics.models import COUNTERS, RATES
from mailramp.runtime import Runtime, open_runtime
from mailramp.storage.sql import SqlStore
from mailramp.storage.sql.tables import (
    events,
    mailboxes,
    metrics,
    recipients,
    suppressions,
    tracking,
)
from mailramp.tracking.models import SETTLING
from mailramp.tracking.networks import shipped
from tests.conftest import STRICT
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving
from tests.support.settling import settle_now
from tests.support.smtp import SmtpServer
from tests.support.tracking_site import SenderSpec, Sent, send_all

SEED = int(os.environ.get("MAILRAMP_TEST_SEED", "2025"))
PER_GROUP = 8  # 48 recipients: within a new mailbox's daily limit (50)
GROUPS = ("apple_mpp", "gmail_proxy", "browser_scanner", "head_then_get", "one_link", "two_links")
PEOPLE = frozenset({"one_link", "two_links"})
"""The groups whose opens and clicks are a person's: the truth the rules are scored on."""
LINKS = ("https://acme.com/offer?e={{email}}", "https://acme.com/about")
SETTLE_SECONDS = 30  # mailramp's defaults (config.py), the rules as shipped
BURST_SECONDS = 5
SETTLED_WITHIN = 60.0
"""Real seconds the server's worker gets to settle everything once its clock is past."""

APPLE = "Mozilla/5.0"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
EDGE = CHROME + " Edg/126.0.2592.87"
MAIL_CLIENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.12.2",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17726; Pro)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",  # a webmail in a browser
)
BROWSERS = (
    CHROME,
    EDGE,
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
)
HOME_NETWORKS = (24, 73, 81, 86, 92)
"""First octets of blocks consumer ISPs hold (none on the known-networks list: checked)."""

LIBFAKETIME = (
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/*/faketime/libfaketime.so.1",
)
FAKETIME_SUPPORT = Path(__file__).resolve().parents[1] / "support" / "faketime"


# --- The server's clock -------------------------------------------------------------------


def libfaketime() -> str:
    """The libfaketime preload library (Debian's `libfaketime` package)."""
    for pattern in LIBFAKETIME:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    reason = "libfaketime is not installed (scripts/install-services installs faketime)"
    if STRICT:
        pytest.fail(f"strict mode: {reason}", pytrace=False)
    pytest.skip(reason)


class ServerClock:
    """A stopped clock for a server started with `environment()`, moved by the test:
    libfaketime reads an absolute moment from a file at every call, so the server's clock
    shows that moment, not running, until the file says another. Every request is stamped at
    the moment planned for it, however slow the machine (2 shared cores here)."""

    def __init__(self, directory: Path, start: datetime) -> None:
        self._library = libfaketime()
        self._file = directory / "faketime.rc"
        self.now = start
        self._write()

    def environment(self, **settings: str) -> dict[str, str]:
        """`clean_environment(**settings)` for a process on this clock. Any faketime setting
        this process runs under (the guard run's `faketime '+1100 days'`) is replaced: its
        FAKETIME would win over the file. The moments written are this process's, so the two
        clocks agree either way."""
        environment = {
            name: value
            for name, value in clean_environment(**settings).items()
            if not name.startswith("FAKETIME")
        }
        preloads = [
            library
            for library in environment.get("LD_PRELOAD", "").split()
            if "faketime" not in library
        ]
        paths = [
            path
            for path in environment.get("PYTHONPATH", "").split(os.pathsep)
            if path and Path(path).resolve() != FAKETIME_SUPPORT
        ]
        return environment | {
            "LD_PRELOAD": " ".join([self._library, *preloads]),
            "FAKETIME_TIMESTAMP_FILE": str(self._file),
            "FAKETIME_NO_CACHE": "1",  # a new moment is seen at the next call
            # Python's locks and sleeps need the monotonic clock left alone (see
            # tests/support/faketime/sitecustomize.py, which the PYTHONPATH loads); the
            # server's timeouts and its worker's intervals run on it, in real time.
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "PYTHONPATH": os.pathsep.join([str(FAKETIME_SUPPORT), *paths]),
            "TZ": "UTC",  # the moment in the file is read as local time
        }

    def move_to(self, moment: datetime) -> None:
        """The server's clock at `moment` from now on, unless it is there already (it never
        goes back)."""
        if moment > self.now:
            self.now = moment
            self._write()

    def _write(self) -> None:
        staged = self._file.with_name(self._file.name + ".new")
        staged.write_text(self.now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f\n"))
        staged.replace(self._file)  # atomic: the server never reads half a moment


# --- A campaign, really sent ----------------------------------------------------------------


@dataclass
class Campaign:
    """A campaign sent to some recipients, the messages as received, and where to serve it."""

    settings: Settings
    port: int
    user_id: str
    campaign_id: str
    sent: dict[str, Sent]

    @property
    def base(self) -> str:
        return self.settings.public_base_url

    def serve_settings(self, **settings: str) -> dict[str, str]:
        """The MAILRAMP_ settings of `mailramp serve` on this campaign's database."""
        return {
            "MAILRAMP_PUBLIC_BASE_URL": self.base,
            "MAILRAMP_DATABASE_URL": self.settings.database_url,
            "MAILRAMP_SETTLE_SECONDS": str(SETTLE_SECONDS),
            "MAILRAMP_SCANNER_BURST_SECONDS": str(BURST_SECONDS),
            **settings,
        }

    def run(self, call: Any) -> Any:
        """`await call(runtime)` on a runtime of this campaign's database."""

        async def go() -> Any:
            runtime = await open_runtime(self.settings)
            try:
                return await call(runtime)
            finally:
                await runtime.close()

        return asyncio.run(go())


def send_campaign(directory: Path, database_url: str, addresses: list[str]) -> Campaign:
    """Send one HTML campaign to `addresses` through the worker, to an SMTP server on loopback."""
    port = free_port()
    settings = Settings(
        database_url=database_url,
        encryption_key_file=directory / "mailramp.key",
        public_base_url=f"http://127.0.0.1:{port}",
        allow_private_hosts=True,
    )
    smtp = SmtpServer({"ann@acme.com": "pw"}).start()
    try:
        spec = SenderSpec("ann", LINKS, tuple(addresses))
        made, records = asyncio.run(send_all(settings, smtp, [spec]))
        received = [received.message for received in smtp.inbox.messages]
    finally:
        smtp.stop()
    user_id, campaign_id = made["ann"]
    sent = {}
    for message in received:
        _, _, _, record_id = records[str(message["To"])]
        sent[str(message["To"])] = Sent(
            "ann", user_id, campaign_id, record_id, str(message["To"]), message
        )
    assert sorted(sent) == sorted(addresses)
    return Campaign(settings, port, user_id, campaign_id, sent)


def tracked_urls(campaign: Campaign, sent: Sent) -> tuple[str, list[str], list[str]]:
    """The message's pixel, its click links, and every tracked link (the unsubscribe links
    of the body and of List-Unsubscribe too) as a scanner extracts them."""
    urls = list(
        dict.fromkeys(
            html.unescape(url) for url in sent.every_url() if url.startswith(campaign.base)
        )
    )
    links = [url for url in urls if url != sent.open_url]
    assert sent.open_url in urls
    clicks = [html.unescape(url) for url in sent.click_urls]
    assert sent.list_unsubscribe in links and len(clicks) == len(LINKS)
    return sent.open_url, clicks, links


# --- Who does what, when --------------------------------------------------------------------


@dataclass(frozen=True)
class Fetch:
    """One request: `at` seconds after its email was sent, by an actor at `address`."""

    at: float
    recipient: str
    method: str
    url: str
    agent: str
    address: str


def address_of(group: str, n: int, rng: random.Random) -> str:
    """An actor's address: Apple's and Google's networks for their proxies, documentation
    networks (listed nowhere) for the scanners' clouds, consumer ISPs for people."""
    octet = rng.randrange(1, 255)
    if group == "apple_mpp":
        return f"17.{rng.randrange(256)}.{rng.randrange(256)}.{octet}"
    if group == "gmail_proxy":
        return f"66.249.{rng.randrange(80, 96)}.{octet}"
    if group == "browser_scanner":
        return f"203.0.113.{10 + n}"
    if group == "head_then_get":
        return f"198.51.100.{10 + n}"
    first = rng.choice(HOME_NETWORKS)
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{octet}"


def behaviour(
    group: str,
    recipient: str,
    urls: tuple[str, list[str], list[str]],
    address: str,
    rng: random.Random,
) -> list[Fetch]:
    """What one actor of `group` does with the message it got."""

    def fetch(at: float, url: str, agent: str, method: str = "GET") -> Fetch:
        return Fetch(at, recipient, method, url, agent, address)

    pixel, clicks, links = urls
    assert set(clicks) <= set(links)
    if group == "apple_mpp":
        return [fetch(rng.uniform(1, 60), pixel, APPLE)]
    if group == "gmail_proxy":
        return [fetch(rng.uniform(30, 7200), pixel, GMAIL)]
    plan = []
    if group == "browser_scanner":
        at = rng.uniform(20, 600)
        for url in rng.sample([pixel, *links], len(links) + 1):
            plan.append(fetch(at, url, CHROME))
            at += rng.uniform(0.05, 0.25)  # all of it within about a second
        return plan
    if group == "head_then_get":
        at = rng.uniform(20, 600)
        for url in links:
            plan.append(fetch(at, url, EDGE, "HEAD"))
            at += rng.uniform(0.1, 0.5)
            plan.append(fetch(at, url, EDGE))
            at += rng.uniform(0.05, 0.3)
        return plan
    opened = rng.uniform(5, 7200)
    clicked = opened + rng.uniform(2, 60)
    browser = rng.choice(BROWSERS)
    plan = [fetch(opened, pixel, rng.choice(MAIL_CLIENTS))]
    if group == "one_link":
        return [*plan, fetch(clicked, rng.choice(clicks), browser)]
    assert group == "two_links"
    return [
        *plan,
        fetch(clicked, clicks[0], browser),
        fetch(clicked + rng.uniform(55, 65), clicks[1], browser),
    ]


def recipient_address(group: str, n: int) -> str:
    return f"{group.replace('_', '-')}-{n}@example.com"


def group_of(recipient: str) -> str:
    return recipient.rsplit("-", 1)[0].replace("-", "_")


def plan_timeline(campaign: Campaign, rng: random.Random) -> list[Fetch]:
    """Every actor's requests, each actor at an address of its own."""
    networks = shipped()
    used: set[str] = set()
    timeline = []
    for group in GROUPS:
        for n in range(PER_GROUP):
            recipient = recipient_address(group, n)
            while (address := address_of(group, n, rng)) in used:
                pass
            used.add(address)
            network = networks.find(address)
            # Only Apple's proxies are on a list; every other verdict comes from behaviour.
            assert (network.operator if network else None) == (
                "apple" if group == "apple_mpp" else None
            ), address
            urls = tracked_urls(campaign, campaign.sent[recipient])
            timeline += behaviour(group, recipient, urls, address, rng)
    return timeline


# --- What the database says -----------------------------------------------------------------


@dataclass
class Outcome:
    """What the requests left in the database."""

    sent_at: dict[str, datetime]
    events: list[tuple[str, str, str | None, datetime]]
    """(recipient, type, machine_reason, occurred_at) of the tracking requests' events."""
    records: dict[str, dict[str, datetime | None]]
    """The email's human_opened_at, human_clicked_at, unsubscribed_at, by recipient."""
    people: dict[str, dict[str, datetime | None]]
    """The same moments on the person (campaign_recipients), which the counters count."""
    counters: dict[str, Any]
    suppressions: int


MOMENTS = ("human_opened_at", "human_clicked_at", "unsubscribed_at")
FETCH_TYPES = ("open", "click", "unsubscribe_page", "trap", "unsubscribe")


async def read_outcome(database_url: str, campaign_id: str) -> Outcome:
    store = SqlStore.from_url(database_url)
    try:
        async with store.engine.connect() as connection:
            found = await connection.execute(
                select(
                    events.c.recipient_email,
                    events.c.type,
                    events.c.machine_reason,
                    events.c.occurred_at,
                ).where(events.c.campaign_id == campaign_id, events.c.type.in_(FETCH_TYPES))
            )
            logged = [(str(a), str(b), c, d) for a, b, c, d in found.all()]
            emails = (
                await connection.execute(
                    select(
                        tracking.c.recipient_email,
                        tracking.c.sent_at,
                        *(tracking.c[name] for name in MOMENTS),
                    ).where(tracking.c.campaign_id == campaign_id)
                )
            ).all()
            people = (
                await connection.execute(
                    select(
                        recipients.c.recipient_email, *(recipients.c[name] for name in MOMENTS)
                    ).where(recipients.c.campaign_id == campaign_id)
                )
            ).all()
            counters = (
                (
                    await connection.execute(
                        select(*(metrics.c[name] for name in (*COUNTERS, *RATES))).where(
                            metrics.c.campaign_id == campaign_id
                        )
                    )
                )
                .mappings()
                .one()
            )
            suppressed = (
                await connection.execute(select(func.count()).select_from(suppressions))
            ).scalar_one()
    finally:
        await store.close()
    return Outcome(
        sent_at={str(row[0]): row[1] for row in emails},
        events=sorted(logged, key=lambda event: (event[0], event[3])),
        records={str(row[0]): dict(zip(MOMENTS, row[2:], strict=True)) for row in emails},
        people={str(row[0]): dict(zip(MOMENTS, row[1:], strict=True)) for row in people},
        counters=dict(counters),
        suppressions=int(suppressed),
    )


async def domain_checked(database_url: str, moment: datetime) -> None:
    """Arrangement: the sending domains were checked in DNS at `moment`, so no check is due
    while the server runs: it would look outside the machine, and under libfaketime the
    check's thread (checkdmarc's import, then lookups) left the server unanswering for 20-30
    s here, where without libfaketime it takes 2."""
    store = SqlStore.from_url(database_url)
    try:
        async with store.engine.begin() as connection:
            await connection.execute(mailboxes.update().values(dns_checked_at=moment))
    finally:
        await store.close()


async def still_settling(database_url: str) -> int:
    store = SqlStore.from_url(database_url)
    try:
        async with store.engine.connect() as connection:
            waiting = await connection.execute(
                select(func.count()).where(events.c.machine_reason == SETTLING)
            )
            return int(waiting.scalar_one())
    finally:
        await store.close()


def wait_until_settled(database_url: str, *, within: float) -> float:
    """Seconds (real) until no event is settling; fails after `within`."""
    started = time.monotonic()
    while (waiting := asyncio.run(still_settling(database_url))) > 0:
        if time.monotonic() - started > within:
            raise AssertionError(
                f"{waiting} events still settling {within:.0f} s after the server's clock "
                "passed their settling window: its worker did not decide them"
            )
        time.sleep(0.25)
    return time.monotonic() - started


@dataclass(frozen=True)
class Score:
    name: str
    found: frozenset[str]
    truth: frozenset[str]

    @property
    def true_positives(self) -> int:
        return len(self.found & self.truth)

    @property
    def precision(self) -> float:
        return self.true_positives / len(self.found) if self.found else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / len(self.truth) if self.truth else 1.0

    def line(self) -> str:
        return (
            f"{self.name:<13} TP {self.true_positives:3d}  "
            f"FP {len(self.found - self.truth):3d}  FN {len(self.truth - self.found):3d}  "
            f"precision {self.precision:.3f}  recall {self.recall:.3f}"
        )


def what_the_rules_said(outcome: Outcome) -> list[str]:
    """Per group: each kind of request and the verdicts it got, counted."""
    said: dict[str, Counter[str]] = {group: Counter() for group in GROUPS}
    for recipient, kind, reason, _ in outcome.events:
        said[group_of(recipient)][f"{kind} {reason or 'person'}"] += 1
    return [
        f"  {group:<16} " + ", ".join(f"{verdict} x{n}" for verdict, n in sorted(counts.items()))
        for group, counts in said.items()
    ]


# --- The scenario -----------------------------------------------------------------------------


def test_people_are_told_from_proxies_and_scanners(database_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    addresses = [recipient_address(group, n) for group in GROUPS for n in range(PER_GROUP)]
    campaign = send_campaign(tmp_path, database_url, addresses)
    rng = random.Random(SEED)
    timeline = plan_timeline(campaign, rng)
    sent_at = asyncio.run(read_outcome(database_url, campaign.campaign_id)).sent_at
    # In milliseconds, as event times are stored.
    planned = sorted(
        (
            (sent_at[fetch.recipient] + timedelta(milliseconds=round(fetch.at * 1000)), fetch)
            for fetch in timeline
        ),
        key=lambda step: step[0],
    )

    asyncio.run(domain_checked(database_url, max(sent_at.values())))
    clock = ServerClock(tmp_path, start=planned[0][0])
    environment = clock.environment(**campaign.serve_settings(MAILRAMP_RUN_WORKER="true"))
    with serving(campaign.port, cwd=tmp_path, env=environment), httpx.Client(timeout=30) as client:
        for moment, fetch in planned:
            clock.move_to(moment)
            response = client.request(
                fetch.method,
                fetch.url,
                headers={"User-Agent": fetch.agent, "X-Forwarded-For": fetch.address},
            )
            assert response.status_code in (200, 302), (fetch, response.status_code)
        # Past every request's settling window, by the server's clock: its worker decides.
        clock.move_to(planned[-1][0] + timedelta(seconds=SETTLE_SECONDS + BURST_SECONDS))
        waited = wait_until_settled(database_url, within=SETTLED_WITHIN)
        said = what_the_timeline_says(campaign, client)
    outcome = asyncio.run(read_outcome(database_url, campaign.campaign_id))

    # Every request was logged at the moment planned for it (to the millisecond stored:
    # libfaketime's float arithmetic may land a microsecond short): the server's clock.
    assert len(outcome.events) == len(planned)
    for recipient in addresses:
        made = [event[3] for event in outcome.events if event[0] == recipient]
        meant = sorted(moment for moment, fetch in planned if fetch.recipient == recipient)
        assert len(made) == len(meant), recipient
        for at, then in zip(made, meant, strict=True):
            assert abs(at - then) <= timedelta(milliseconds=1), (recipient, at, then)

    truth = frozenset(address for address in addresses if group_of(address) in PEOPLE)
    scores = [
        Score(
            f"human {name}",
            frozenset(r for r, moments in outcome.records.items() if moments[moment]),
            truth,
        )
        for name, moment in (("opens", "human_opened_at"), ("clicks", "human_clicked_at"))
    ]
    print(
        f"\n[people or machines · {campaign.settings.backend}] seed {SEED} "
        f"(MAILRAMP_TEST_SEED={SEED} replays it): {len(addresses)} recipients, "
        f"{PER_GROUP} per group, {len(planned)} requests over "
        f"{(planned[-1][0] - planned[0][0]).total_seconds() / 3600:.2f} h of the server's "
        f"clock, each logged at its planned moment; all settled by the server's worker "
        f"{waited:.1f} s (real) after its clock passed the window"
    )
    for score in scores:
        print(f"  {score.line()}")
    print("  what the rules said, per group (event type, verdict):")
    for line in what_the_rules_said(outcome):
        print(line)

    # The counters are the log's: recomputed from the event log, nothing changes.
    stored = {name: outcome.counters[name] for name in (*COUNTERS, *RATES)}

    async def recompute(runtime: Runtime) -> dict[str, Any]:
        rebuilt = await runtime.tracking.recompute(campaign.user_id, campaign.campaign_id)
        return {name: getattr(rebuilt, name) for name in (*COUNTERS, *RATES)}

    assert campaign.run(recompute) == stored
    # ... and they count the people the records name.
    for first, counter in (
        ("human_opened_at", "total_human_opened"),
        ("human_clicked_at", "total_human_clicks"),
    ):
        assert stored[counter] == sum(1 for person in outcome.people.values() if person[first])
    assert outcome.people == outcome.records  # one email per person
    print(
        f"  counters = their recomputation from the log: total_opened {stored['total_opened']}, "
        f"total_clicks {stored['total_clicks']}, total_human_opened "
        f"{stored['total_human_opened']}, total_human_clicks {stored['total_human_clicks']}, "
        f"total_unsubscribed {stored['total_unsubscribed']}; "
        f"{time.monotonic() - started:.1f} s in all"
    )

    # Fetching the unsubscribe links unsubscribed nobody.
    assert stored["total_unsubscribed"] == 0 and outcome.suppressions == 0
    assert not any(moments["unsubscribed_at"] for moments in outcome.people.values())
    assert not any(event[1] == "unsubscribe" for event in outcome.events)

    # Each person's timeline says why, the same on the campaign page and in the API.
    print("  timelines (campaign page):")
    for group, lines in said.items():
        print(f"  {group:16s} {' | '.join(lines)}")
    assert any(
        re.fullmatch(r"clicked \(scanner: burst of 4 links in \d+\.\d s\)", line)
        for line in said["browser_scanner"]
    ), said["browser_scanner"]
    assert "clicked (scanner: a HEAD request)" in said["head_then_get"]
    assert any(line.startswith("clicked (scanner: burst of") for line in said["head_then_get"]), (
        said["head_then_get"]
    )
    assert said["apple_mpp"] == ["opened (Apple Mail Privacy Protection)"]
    assert said["gmail_proxy"] == ["opened (Gmail's image proxy)"]
    assert set(said["one_link"]) == {"opened", "clicked"}

    for score in scores:
        assert score.precision >= 0.95 and score.recall >= 0.95, score.line()


def what_the_timeline_says(campaign: Campaign, client: httpx.Client) -> dict[str, list[str]]:
    """For the first recipient of each group: the requests' lines of their timeline on the
    campaign page (signed in as the campaign's owner), checked against the `summary` the
    API gives for the same events."""

    async def sign_in(runtime: Runtime) -> tuple[str, str]:
        user = await runtime.accounts.get_user(campaign.user_id)
        session = await runtime.auth.start_session(user, "test")
        _, key = await runtime.auth.create_api_key(campaign.user_id, name="timeline")
        return session.token, key

    token, key = campaign.run(sign_in)
    said: dict[str, list[str]] = {}
    for group in GROUPS:
        record_id = campaign.sent[recipient_address(group, 0)].record_id
        page = client.get(
            f"{campaign.base}/campaigns/{campaign.campaign_id}",
            params={"record": record_id},
            headers={"Cookie": f"mailramp_session={token}"},
        )
        assert page.status_code == 200, page.status_code
        items = re.findall(
            r'<li data-event="([a-z_]+)"[^>]*>.*?<span class="what">(.*?)</span>', page.text, re.S
        )
        lines = [
            html.unescape(text)
            for kind, text in items
            if kind in ("open", "click", "unsubscribe_page")
        ]
        said[group] = list(dict.fromkeys(lines))  # each line once, in order
        api = client.get(
            f"{campaign.base}/api/v1/campaigns/{campaign.campaign_id}/recipients/{record_id}/events",
            headers={"Authorization": f"Bearer {key}"},
        )
        summaries = [
            event["summary"]
            for event in api.json()
            if event["type"] in ("open", "click", "unsubscribe_page")
        ]
        assert list(dict.fromkeys(summaries)) == said[group], (summaries, said[group])
    return said


# --- Whose address is believed ----------------------------------------------------------------


def test_forwarded_for_is_believed_from_a_trusted_proxy_only(
    tmp_path: Path, sqlite_template: Path
) -> None:
    database = tmp_path / "mailramp.db"
    database.write_bytes(sqlite_template.read_bytes())
    url = f"sqlite:///{database}"
    untrusted, trusted = "untrusted@example.com", "trusted@example.com"
    campaign = send_campaign(tmp_path, url, [untrusted, trusted])
    headers = {"User-Agent": BROWSERS[2], "X-Forwarded-For": "17.1.2.3"}  # Apple's network

    for recipient, proxies in ((untrusted, "192.0.2.1"), (trusted, None)):
        chosen = {"MAILRAMP_TRUSTED_PROXIES": proxies} if proxies else {}  # None: the default
        environment = clean_environment(
            **campaign.serve_settings(MAILRAMP_RUN_WORKER="false", **chosen)
        )
        with serving(campaign.port, cwd=tmp_path, env=environment):
            response = httpx.get(campaign.sent[recipient].open_url, headers=headers, timeout=30)
            assert response.status_code == 200
    asyncio.run(settle_now(campaign.settings))

    async def fingerprints(runtime: Runtime) -> dict[str, tuple[str | None, str]]:
        signer = runtime.tracking_links.signer
        found = {}
        for recipient in (untrusted, trusted):
            _, logged = await runtime.tracking.recipient_events(
                campaign.user_id, campaign.campaign_id, campaign.sent[recipient].record_id
            )
            (opened,) = [event for event in logged if event.type.value == "open"]
            address = {signer.fingerprint(ip): ip for ip in ("127.0.0.1", "17.1.2.3")}.get(
                str(opened.details.get("ip_hash")), "another address"
            )
            found[recipient] = (opened.machine_reason, address)
        return found

    outcome = asyncio.run(read_outcome(url, campaign.campaign_id))
    # From a peer that is not a trusted proxy, the header is ignored: the socket's address
    # (loopback) is the visitor's, and a browser opening the pixel from there is a person.
    assert campaign.run(fingerprints) == {
        untrusted: (None, "127.0.0.1"),
        trusted: ("apple_mpp", "17.1.2.3"),
    }
    assert outcome.records[untrusted]["human_opened_at"] is not None
    assert outcome.records[trusted]["human_opened_at"] is None
