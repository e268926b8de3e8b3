"""The scale-out scenario, shared by tests/scale/test_scale_postgres.py and bench/scale.py.

N `mailramp serve` processes (no worker inside) and M `mailramp worker` processes on one
PostgreSQL database, coordinated by nothing but that database:

1. a recording SMTP sink in its own process (tests/scale/sink.py);
2. a user, an SMTP mailbox on the sink and an HTML campaign (one link) whose recipients are
   all due now;
3. the servers start, then the workers; the run waits — polling the database, with a
   generous deadline and no timing assertion — until no record is `pending` or `sending`;
4. tracking hits go to the servers at once, as a reverse proxy would spread them: the links
   in the received messages point at one public base, and each hit's host:port is rewritten
   to one of the servers. Repeated hits of one link go to two different servers together, so
   the servers race on "first event of its kind";
5. the campaign's stored counters are read, then recomputed from the tracking records, and
   counted a third way straight from the event log.

`run_scale_out` returns everything measured; the caller asserts and reports.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from mailramp.config import Settings
from mailramp.metrics.models import COUNTERS, RATES, CampaignMetrics
from mailramp.runtime import Runtime, open_runtime
from mailramp.tracking.classify import TOO_FAST
from tests.support.loops import run_blocking
from tests.support.postgres import free_port
from tests.support.processes import MAILRAMP, clean_environment, serving
from tests.support.scenario import make_due_now, smtp_sender
from tests.support.settling import settle_now

SINK = Path(__file__).with_name("sink.py")
SENDER = "scale@acme.com"
PUBLIC_BASE = "https://track.mailramp.test"
"""Where every tracking link in the messages points; hits are rewritten to a server."""
LINK = "https://acme.example/offer?who={{email}}"
MESSAGE = (
    "<html><body><p>Hello {{first_name}},</p>"
    f'<p>Our offer is <a href="{LINK}">here</a>.</p></body></html>'
)
BROWSER = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
"""A person's browser: no proxy, scanner or HTTP-library marker (tracking/classify.py)."""
FINAL = frozenset({"sent", "bounced", "failed", "uncertain", "cancelled", "expired"})


def recipient(n: int) -> str:
    return f"r{n}@example.com"


def destination(email: str) -> str:
    """Where the message's link takes `email` (the click must redirect exactly there)."""
    return LINK.replace("{{email}}", email)


@dataclass(frozen=True)
class TrackingPlan:
    """How many distinct recipients open, click and unsubscribe, and how many of each hit
    are sent a second time (to the other server, at the same moment)."""

    opens: int = 3000
    clicks: int = 1000
    """Chosen among the openers, so unique opens stay `opens` (a click is also an open)."""
    unsubscribes: int = 100
    """Chosen among recipients who neither open nor click."""
    repeated_opens: int = 300
    repeated_clicks: int = 100
    repeated_unsubscribes: int = 10
    concurrency: int = 16
    """Requests in flight in all (split across the servers), so runs with more servers
    get the same offered load."""

    def scaled_to(self, recipients: int) -> TrackingPlan:
        """The same proportions for a smaller campaign (3,000 opens per 10,000 recipients)."""
        if recipients >= 10_000:
            return self
        factor = recipients / 10_000

        def part(n: int) -> int:
            return max(int(n * factor), 1)

        return TrackingPlan(
            opens=part(self.opens),
            clicks=part(self.clicks),
            unsubscribes=part(self.unsubscribes),
            repeated_opens=part(self.repeated_opens),
            repeated_clicks=part(self.repeated_clicks),
            repeated_unsubscribes=part(self.repeated_unsubscribes),
            concurrency=self.concurrency,
        )

    def expected_counters(self, recipients: int) -> dict[str, int]:
        """The campaign's counters once every message was accepted and every hit made."""
        return {
            "total_sent": recipients,
            "total_delivered": recipients,
            "total_bounced": 0,
            "total_opened": self.opens,
            "total_human_opened": self.opens,
            "total_clicks": self.clicks,
            "total_human_clicks": self.clicks,
            "total_unsubscribed": self.unsubscribes,
            "total_replied": 0,
            "total_auto_replied": 0,
        }

    def expected_events(self) -> dict[str, int]:
        """Rows the event log must hold: every hit, repeats included."""
        return {
            "open": self.opens + self.repeated_opens,
            "click": self.clicks + self.repeated_clicks,
            "unsubscribe": self.unsubscribes + self.repeated_unsubscribes,
        }


@dataclass(frozen=True)
class Delivery:
    """One message as the sink received it."""

    recipients: list[str]
    message_id: str | None
    urls: list[str]

    def tracking_path(self, kind: str) -> str:
        """The path of the message's pixel (`o`), click (`c`) or unsubscribe (`u`) link."""
        marker = f"/t/{kind}/"
        found = {url[len(PUBLIC_BASE) :] for url in self.urls if marker in url}
        assert len(found) == 1, f"expected one {marker} link in {self.message_id}: {self.urls}"
        path = found.pop()
        assert path.startswith(marker), f"{self.urls} do not point at {PUBLIC_BASE}"
        return path


class RecordingSink:
    """tests/scale/sink.py as a process; `stop()` returns what it received."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.output = directory / "sink.jsonl"
        self.process = subprocess.Popen(
            [sys.executable, str(SINK), str(self.port), str(self.output)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line == "ready", f"the SMTP sink did not start: {line!r}"

    def stop(self) -> list[Delivery]:
        if self.process.poll() is not None:
            raise AssertionError(f"the SMTP sink died with code {self.process.returncode}")
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=60)
        deliveries = [
            Delivery(**json.loads(line))
            for line in self.output.read_text(encoding="utf-8").splitlines()
        ]
        assert int(out.strip().splitlines()[-1]) == len(deliveries)
        return deliveries

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# -- the database --------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The database every process shares, and its key set."""

    url: str
    key: str

    def settings(self) -> Settings:
        return Settings(database_url=self.url, encryption_keys=self.key, auto_migrate=False)

    async def runtime(self) -> Runtime:
        return await open_runtime(self.settings())

    def environment(self, **overrides: str) -> dict[str, str]:
        """What every `mailramp` process of the run gets (and nothing of the caller's)."""
        return clean_environment(
            MAILRAMP_DATABASE_URL=self.url,
            MAILRAMP_ENCRYPTION_KEYS=self.key,
            MAILRAMP_PUBLIC_BASE_URL=PUBLIC_BASE,
            MAILRAMP_ALLOW_PRIVATE_HOSTS="true",
            MAILRAMP_AUTO_MIGRATE="false",
            MAILRAMP_LOG_LEVEL="WARNING",
            **overrides,
        )


async def prepare(target: Target, smtp_port: int, recipients: int) -> tuple[str, str]:
    """A user, an SMTP mailbox on the sink and a campaign of `recipients`, all due now;
    returns (user_id, campaign_id)."""
    runtime = await target.runtime()
    try:
        user, mailbox = await smtp_sender(
            runtime, email=SENDER, smtp_port=smtp_port, daily_limit=10_000
        )
        campaign = await runtime.campaigns.create_campaign(
            user.user_id,
            mailbox_id=mailbox.mailbox_id,
            campaign_name="Scale-out",
            subject="Hello {{first_name}}",
            message=MESSAGE,
            message_format="html",
            # Long enough for the plan to fit the mailbox's 10,000 a day, whatever the count.
            duration=24 * (recipients // 10_000 + 1),
            start_time=runtime.clock() - timedelta(minutes=1),
            # 1 % of the recipients are refused, the first one first: the bounce brake (3 %
            # after 20) would pause the campaign these tests crash and scale out.
            brake_rules={"bounce_rate_percent": 100},
        )
        rows = "".join(f"{recipient(n)},R{n}\n" for n in range(recipients))
        report = await runtime.sending.import_recipients(
            user.user_id, campaign.campaign_id, io.BytesIO(f"email,first_name\n{rows}".encode())
        )
        assert report.accepted == recipients, report.summary()
        # Everything due now: the run measures sending, not the plan's pacing.
        await make_due_now(runtime, campaign.campaign_id)
        return user.user_id, campaign.campaign_id
    finally:
        await runtime.close()


async def _query(target: Target, statement: str, **params: Any) -> list[dict[str, Any]]:
    runtime = await target.runtime()
    try:
        async with runtime.store.engine.connect() as connection:  # type: ignore[attr-defined]
            rows = (await connection.execute(text(statement), params)).mappings().all()
            return [dict(row) for row in rows]
    finally:
        await runtime.close()


# -- processes -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far (Linux /proc); 0 if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (name)": state is field 3
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends_of(database: str) -> list[int]:
    """The PostgreSQL server processes serving `database` (named in their process title)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres: ") and f" {database} ".encode() in title:
            pids.append(int(entry.name))
    return pids


@dataclass
class CpuProbe:
    """CPU seconds used by groups of processes between two samples."""

    groups: dict[str, Callable[[], list[int]]]
    _start: dict[int, float] = field(default_factory=dict)

    def start(self) -> None:
        self._start = {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids()}

    def used(self) -> dict[str, float]:
        """Per group, CPU seconds since `start()` (processes that exited meanwhile are not
        counted, processes started meanwhile count whole)."""
        return {
            name: round(sum(cpu_seconds(pid) - self._start.get(pid, 0.0) for pid in pids()), 2)
            for name, pids in self.groups.items()
        }


@dataclass
class Workers:
    """`mailramp worker` processes, each logging to a file of its own."""

    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]

    @classmethod
    def start(cls, count: int, environment: dict[str, str], directory: Path) -> Workers:
        logs = [directory / f"worker{n}.log" for n in range(count)]
        processes = []
        for log in logs:
            with log.open("wb") as handle:
                processes.append(
                    subprocess.Popen(
                        [*MAILRAMP, "worker"],
                        env=environment,
                        stdout=handle,
                        stderr=subprocess.STDOUT,
                    )
                )
        return cls(processes, logs)

    def check_alive(self) -> None:
        for process, log in zip(self.processes, self.logs, strict=True):
            if process.poll() is not None:
                raise AssertionError(
                    f"a worker exited with code {process.returncode}:\n{log.read_text()[-3000:]}"
                )

    def stop(self) -> list[int]:
        """SIGTERM each (they finish what is in flight); their exit codes."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=30))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        return codes

    def log_tail(self, characters: int = 2000) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-characters:]}" for log in self.logs
        )

    def errors(self) -> list[str]:
        """Lines of the workers' logs that report an error or a traceback."""
        found = []
        for log in self.logs:
            for line in log.read_text(errors="replace").splitlines():
                if " ERROR " in line or "Traceback" in line or "deadlock" in line.lower():
                    found.append(f"{log.name}: {line}")
        return found


@contextmanager
def serve_processes(
    count: int, target: Target, directory: Path
) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """`count` `mailramp serve` processes on ports of their own, with no worker inside and
    one public base for all; yields them by base URL."""
    environment = target.environment(MAILRAMP_RUN_WORKER="false")
    with ExitStack() as stack:
        running = {}
        for n in range(count):
            port = free_port()
            home = directory / f"serve{n}"
            home.mkdir()
            process = stack.enter_context(
                serving(port, cwd=home, env=environment, ready_timeout=60)
            )
            running[f"http://127.0.0.1:{port}"] = process
        yield running


async def wait_until_final(
    target: Target,
    user_id: str,
    campaign_id: str,
    workers: Workers,
    *,
    within: float,
    probe: CpuProbe | None = None,
) -> dict[str, int]:
    """Poll the database until no record is `pending` or `sending`; the final counts. The
    probe starts when the first record is final (start-up is not sending)."""
    runtime = await target.runtime()
    try:
        deadline = time.monotonic() + within
        started = False
        while True:
            counts = await runtime.sending.status_counts(user_id, campaign_id)
            if probe is not None and not started and counts.get("sent", 0):
                probe.start()
                started = True
            if not any(n for status, n in counts.items() if status not in FINAL):
                return counts
            workers.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"records not final after {within:.0f} s: {counts}\n{workers.log_tail()}"
                )
            # Another process's progress has no event to wait on: polling is the point.
            await asyncio.sleep(0.25)
    finally:
        await runtime.close()


# -- tracking hits -------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    kind: str  # open, click, unsubscribe
    path: str  # /t/o/<token> …
    recipient: str


@dataclass
class HitReport:
    """What the servers answered."""

    requests: int = 0
    seconds: float = 0.0
    per_server: Counter[int] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def plan_hits(
    deliveries: Sequence[Delivery], plan: TrackingPlan, *, seed: int = 7
) -> list[list[Hit]]:
    """Units of hits, shuffled; a unit of two is the same hit made twice at once."""
    rng = random.Random(seed)
    chosen = list(deliveries)
    rng.shuffle(chosen)
    openers = chosen[: plan.opens]
    clickers = openers[: plan.clicks]
    leavers = chosen[plan.opens : plan.opens + plan.unsubscribes]
    assert len(leavers) == plan.unsubscribes, "too few recipients for the tracking plan"

    def units(kind: str, letter: str, group: list[Delivery], repeated: int) -> list[list[Hit]]:
        hits = [Hit(kind, d.tracking_path(letter), d.recipients[0]) for d in group]
        return [[hit, hit] if n < repeated else [hit] for n, hit in enumerate(hits)]

    everything = (
        units("open", "o", openers, plan.repeated_opens)
        + units("click", "c", clickers, plan.repeated_clicks)
        + units("unsubscribe", "u", leavers, plan.repeated_unsubscribes)
    )
    rng.shuffle(everything)
    return everything


async def send_hits(
    units: Sequence[Sequence[Hit]], bases: Sequence[str], concurrency: int
) -> HitReport:
    """Every hit, through the servers in turn (a unit's hits go to different servers at the
    same moment); checks each answer."""
    report = HitReport()
    per_server = max(concurrency // len(bases), 1)
    limits = httpx.Limits(max_connections=per_server, max_keepalive_connections=per_server)
    headers = {"User-Agent": BROWSER, "Accept": "*/*"}
    clients = [
        httpx.AsyncClient(base_url=base, limits=limits, headers=headers, timeout=60)
        for base in bases
    ]
    gate = asyncio.Semaphore(concurrency)

    async def one(hit: Hit, server: int) -> None:
        client = clients[server]
        if hit.kind == "open":
            response = await client.get(hit.path)
            ok = response.status_code == 200 and response.headers["content-type"] == "image/gif"
        elif hit.kind == "click":
            response = await client.get(hit.path)
            ok = response.status_code == 302 and response.headers.get("location") == destination(
                hit.recipient
            )
        else:  # RFC 8058 one-click unsubscribe, as a mail client sends it
            response = await client.post(
                hit.path,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            ok = response.status_code == 200 and "You are unsubscribed" in response.text
        report.requests += 1
        report.per_server[server] += 1
        if not ok:
            report.wrong.append(f"{hit.kind} {hit.recipient} via {server}: {response.status_code}")

    async def unit(first: int, hits: Sequence[Hit]) -> None:
        async with gate:
            await asyncio.gather(
                *(one(hit, (first + n) % len(bases)) for n, hit in enumerate(hits))
            )

    # Hits are numbered across all units and go to the servers in turn: each server gets
    # half, and the two hits of a repeated unit go to different servers.
    firsts = [0, *itertools.accumulate(len(hits) for hits in units)][:-1]
    try:
        started = time.perf_counter()
        pairs = zip(firsts, units, strict=True)
        await asyncio.gather(*(unit(first, hits) for first, hits in pairs))
        report.seconds = time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()
    return report


async def wait_for_click_window(target: Target, campaign_id: str) -> float:
    """Sleep until the last send is older than the scanner window (a click sooner counts as
    a link scanner's, `too_fast`); returns the seconds slept."""
    rows = await _query(
        target,
        "SELECT max(sent_at) AS last FROM email_tracking WHERE campaign_id = :c",
        c=campaign_id,
    )
    last: datetime = rows[0]["last"]
    ready = last + TOO_FAST + timedelta(seconds=1)
    wait = max((ready - datetime.now(UTC)).total_seconds(), 0.0)
    await asyncio.sleep(wait)
    return wait


# -- what the database says afterwards ---------------------------------------------------------


def _counters(metrics: CampaignMetrics) -> dict[str, Any]:
    return {name: getattr(metrics, name) for name in (*COUNTERS, *RATES)}


async def read_metrics(
    target: Target, user_id: str, campaign_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored counters as they are, then as recomputed from the tracking records."""
    runtime = await target.runtime()
    try:
        stored = await runtime.metrics.get_campaign_metrics(campaign_id, user_id=user_id)
        recomputed = await runtime.tracking.recompute(user_id, campaign_id)
        return _counters(stored), _counters(recomputed)
    finally:
        await runtime.close()


async def counted_from_events(target: Target, campaign_id: str) -> dict[str, int]:
    """The counters (and event rows) counted from the event log alone. A click is also an
    open, and a person's click a person's open (tracking/service.py)."""
    rows = await _query(
        target,
        """
        SELECT
          count(DISTINCT record_id) FILTER (WHERE type IN ('open', 'click')) AS total_opened,
          count(DISTINCT record_id) FILTER (WHERE type IN ('open', 'click') AND NOT machine)
            AS total_human_opened,
          count(DISTINCT record_id) FILTER (WHERE type = 'click') AS total_clicks,
          count(DISTINCT record_id) FILTER (WHERE type = 'click' AND NOT machine)
            AS total_human_clicks,
          count(DISTINCT record_id) FILTER (WHERE type = 'unsubscribe') AS total_unsubscribed,
          count(*) FILTER (WHERE type = 'open') AS open_events,
          count(*) FILTER (WHERE type = 'click') AS click_events,
          count(*) FILTER (WHERE type = 'unsubscribe') AS unsubscribe_events,
          count(*) FILTER (WHERE machine) AS machine_events
        FROM email_events WHERE campaign_id = :c
        """,
        c=campaign_id,
    )
    return {name: int(value) for name, value in rows[0].items()}


# -- the whole run -------------------------------------------------------------------------


@dataclass
class ScaleRun:
    """Everything one run measured."""

    recipients: int
    servers: int
    workers: int
    plan: TrackingPlan
    statuses: dict[str, int] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    message_ids: dict[str, str] = field(default_factory=dict)
    """Each recipient's Message-ID as the database holds it."""
    worker_exit_codes: list[int] = field(default_factory=list)
    worker_errors: list[str] = field(default_factory=list)
    send_wall_seconds: float = 0.0
    """From starting the workers to every record final (includes process start-up)."""
    send_span_seconds: float = 0.0
    """From the first recorded send to the last (sent_at)."""
    hits: HitReport = field(default_factory=HitReport)
    click_wait_seconds: float = 0.0
    stored: dict[str, Any] = field(default_factory=dict)
    recomputed: dict[str, Any] = field(default_factory=dict)
    from_events: dict[str, int] = field(default_factory=dict)
    suppressed: int = 0
    total_seconds: float = 0.0
    send_cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds per group of processes, from the first send to the last record final."""
    hit_cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds per group of processes while the tracking hits ran."""

    @property
    def sends_per_second(self) -> float:
        return self.recipients / self.send_span_seconds if self.send_span_seconds else 0.0

    @property
    def sends_per_second_wall(self) -> float:
        return self.recipients / self.send_wall_seconds if self.send_wall_seconds else 0.0

    def summary(self) -> dict[str, Any]:
        """The figures worth keeping (build/*.json, docs/performance.md)."""
        return {
            "recipients": self.recipients,
            "servers": self.servers,
            "workers": self.workers,
            "sends_per_second": round(self.sends_per_second, 1),
            "send_span_seconds": round(self.send_span_seconds, 2),
            "sends_per_second_wall": round(self.sends_per_second_wall, 1),
            "send_wall_seconds": round(self.send_wall_seconds, 2),
            "tracking_hits": self.hits.requests,
            "tracking_hits_per_server": dict(sorted(self.hits.per_server.items())),
            "tracking_seconds": round(self.hits.seconds, 2),
            "tracking_hits_per_second": round(self.hits.per_second, 1),
            "click_window_wait_seconds": round(self.click_wait_seconds, 1),
            "cpu_ms_per_send": _per(self.send_cpu, self.recipients),
            "cpu_ms_per_hit": _per(self.hit_cpu, self.hits.requests),
            "load_average_after": [round(n, 2) for n in os.getloadavg()],
            "total_seconds": round(self.total_seconds, 1),
        }


def _per(cpu: dict[str, float], count: int) -> dict[str, float]:
    """CPU milliseconds per item, per group of processes (and in all)."""
    if not count:
        return {}
    per = {name: round(1000 * seconds / count, 2) for name, seconds in cpu.items()}
    return per | {"total": round(sum(per.values()), 2)}


def run_scale_out(
    target: Target,
    directory: Path,
    *,
    recipients: int,
    servers: int,
    workers: int,
    plan: TrackingPlan | None = None,
    worker_settings: dict[str, str] | None = None,
    timeout: float = 600,
) -> ScaleRun:
    """The whole scenario on a fresh, migrated database (see the module's docstring)."""
    started = time.monotonic()
    plan = plan or TrackingPlan().scaled_to(recipients)
    run = ScaleRun(recipients=recipients, servers=servers, workers=workers, plan=plan)
    database = target.url.rsplit("/", 1)[1]
    sink = RecordingSink(directory)
    try:
        user_id, campaign_id = run_blocking(prepare(target, sink.port, recipients))
        with serve_processes(servers, target, directory) as running:
            environment = target.environment(**(worker_settings or {}))
            began = time.monotonic()
            pool = Workers.start(workers, environment, directory)
            sending = CpuProbe(
                {
                    "workers": lambda: [process.pid for process in pool.processes],
                    "sink": lambda: [sink.process.pid],
                    "postgresql": lambda: backends_of(database),
                }
            )
            try:
                run.statuses = run_blocking(
                    wait_until_final(
                        target, user_id, campaign_id, pool, within=timeout, probe=sending
                    )
                )
                run.send_wall_seconds = time.monotonic() - began
                run.send_cpu = sending.used()
            finally:
                run.worker_exit_codes = pool.stop()
            run.worker_errors = pool.errors()
            run.deliveries = sink.stop()
            rows = run_blocking(
                _query(
                    target,
                    "SELECT recipient_email, message_id FROM email_tracking WHERE campaign_id = :c",
                    c=campaign_id,
                )
            )
            run.message_ids = {row["recipient_email"]: row["message_id"] for row in rows}
            span = run_blocking(
                _query(
                    target,
                    "SELECT extract(epoch FROM max(sent_at) - min(sent_at)) AS seconds "
                    "FROM email_tracking WHERE campaign_id = :c",
                    c=campaign_id,
                )
            )
            run.send_span_seconds = float(span[0]["seconds"] or 0.0)

            units = plan_hits(run.deliveries, plan)
            run.click_wait_seconds = run_blocking(wait_for_click_window(target, campaign_id))
            # PostgreSQL is left out here: the servers' pools open and close connections
            # under load, and a backend that exits takes its CPU figure with it.
            tracking = CpuProbe(
                {
                    "servers": lambda: [process.pid for process in running.values()],
                    "client": lambda: [os.getpid()],
                }
            )
            tracking.start()
            run.hits = run_blocking(send_hits(units, list(running), plan.concurrency))
            run.hit_cpu = tracking.used()
        # People's opens and clicks count once they settle (30 s on): a worker's pass,
        # its clock past the window (the hits are people's: one link each, no bursts).
        run_blocking(settle_now(target.settings()))
        run.stored, run.recomputed = run_blocking(read_metrics(target, user_id, campaign_id))
        run.from_events = run_blocking(counted_from_events(target, campaign_id))
        suppressed = run_blocking(
            _query(
                target,
                "SELECT count(*) AS n FROM suppression_list WHERE user_id = :u",
                u=user_id,
            )
        )
        run.suppressed = int(suppressed[0]["n"])
    finally:
        sink.kill()
    run.total_seconds = time.monotonic() - started
    return run
