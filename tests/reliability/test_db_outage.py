"""Database outage (docs/reliability.md, item 2), and the start-up messages for a database
that cannot be used.

The outage: a `mailramp serve` (with its own worker) and 2 `mailramp worker` processes send
a campaign; mid-campaign this module's own PostgreSQL cluster is stopped with `pg_ctl` for
15 s and started again on the same port and data directory. What a user must see:

- during the outage the processes stay up, /healthz answers 503 and the API 503
  `database_unavailable`; no new message leaves (at most the groups already marked
  `sending` finish);
- within 60 s of the database's return, by themselves: /healthz answers 200 everywhere,
  the API serves the campaign, and every sending process sends again (its
  `mailramp_sends_total{result="sent"}` grows). The seconds each took are printed; the
  60-s bound is a behaviour (they recover by themselves), not a speed;
- the campaign is never `completed` while a record is unfinished (checked in one statement
  each poll), and is `completed` at the end;
- the counts agree exactly: deliveries at the SMTP sink = `sent` records = the campaign's
  `total_sent` = the processes' sent counters; no address or Message-ID arrives twice.

The start-up messages: a wrong PostgreSQL password, a port nothing listens on and a missing
database give one line and exit status 5 from `serve`, `worker` and `db`, never a traceback,
and with MAILRAMP_AUTO_MIGRATE=false an unreachable database is not called empty.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from mailramp.kit.secrets import generate_key
from mailramp.storage.sql import SqlStore
from mailramp.storage.sql.migrate import upgrade
from tests.reliability.support_fleet import (
    Fleet,
    Worker,
    parse_metrics,
    query,
    sent_counter,
    status_counts,
)
from tests.reliability.support_sink import Sink, duplicates, wait_for
from tests.scale.scenario import Target, prepare, read_metrics
from tests.support.loops import run_blocking
from tests.support.postgres import PostgresServer, free_port
from tests.support.processes import MAILRAMP, clean_environment, serving

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

RECIPIENTS = 2000
OUTAGE_SECONDS = 15
RECOVERY_BOUND_SECONDS = 60
IN_FLIGHT_PER_MAILBOX = 5
SENDERS = 3  # the server's own worker and 2 `mailramp worker` processes
ROLE, PASSWORD = "mailramp", "right-password"
PROBLEM = r"Traceback|ERROR|^\w+(\.\w+)*(Error|Exception)\b"
"""A log line that is a traceback or an error, not the one-line warnings of an outage."""


# -- a cluster of this module's own, which it stops and starts -----------------------------


def _pg_ctl(server: PostgresServer, *args: str) -> None:
    command = server._command(str(server.bindir / "pg_ctl"), "-D", str(server.root / "data"))
    subprocess.run([*command, *args], check=True, capture_output=True, timeout=120)


def stop_cluster(server: PostgresServer) -> None:
    """`pg_ctl stop -m fast`: sessions are cut, open transactions rolled back."""
    _pg_ctl(server, "-m", "fast", "-w", "stop")


def start_cluster(server: PostgresServer) -> None:
    """Start it again on the same port and data directory, with the options it began with."""
    options = (
        f"-p {server.port} -k {server.root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    _pg_ctl(server, "-l", str(server.root / "server.log"), "-o", options, "-w", "start")


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster, with a role that must log in with a password."""
    server = PostgresServer.start()
    try:
        psql = server._command(str(server.bindir / "psql"), server.admin_url, "-c")
        subprocess.run(
            [*psql, f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}'"],
            check=True,
            capture_output=True,
        )
        hba = server.root / "data" / "pg_hba.conf"
        hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        _pg_ctl(server, "reload")
        yield server
    finally:
        server.stop()


def _create_database(server: PostgresServer, name: str) -> None:
    psql = server._command(str(server.bindir / "psql"), server.admin_url, "-c")
    subprocess.run([*psql, f"CREATE DATABASE {name}"], check=True, capture_output=True)


def _new_database(server: PostgresServer, name: str) -> str:
    """A migrated database on the cluster; its URL."""
    _create_database(server, name)
    url = server.url(name)

    async def migrate() -> None:
        store = SqlStore.from_url(url)
        try:
            await upgrade(store.engine)
        finally:
            await store.close()

    run_blocking(migrate())
    return url


# -- the outage ----------------------------------------------------------------------------


@dataclass
class Sender:
    """A process that sends: where its /healthz and /metrics are."""

    name: str
    base: str
    sent_at_return: float = 0.0
    healthy_after: float | None = None
    sending_after: float | None = None

    def health(self) -> int:
        try:
            return httpx.get(f"{self.base}/healthz", timeout=10).status_code
        except httpx.TransportError:
            return 0

    def sent(self) -> float:
        answer = httpx.get(f"{self.base}/metrics", timeout=10)
        answer.raise_for_status()
        return sent_counter(parse_metrics(answer.text))


@dataclass
class Watch:
    """What the polls saw."""

    polls: int = 0
    completed_early: list[dict[str, object]] = field(default_factory=list)
    statuses_seen: Counter[str] = field(default_factory=Counter)


def _check_not_completed_early(target: Target, campaign_id: str, watch: Watch) -> int:
    """One statement, so the status and the unfinished count are one snapshot; returns the
    number of unfinished records."""
    row = run_blocking(
        query(
            target,
            "SELECT c.status, (SELECT count(*) FROM email_tracking t "
            "WHERE t.campaign_id = c.campaign_id AND t.status IN ('pending', 'sending')) "
            "AS unfinished FROM campaign_creation_table c WHERE c.campaign_id = :c",
            c=campaign_id,
        )
    )[0]
    watch.polls += 1
    watch.statuses_seen[row["status"]] += 1
    if row["status"] == "completed" and row["unfinished"]:
        watch.completed_early.append(row)
    return int(row["unfinished"])


def _worker_sender(worker: Worker, n: int) -> Sender:
    return Sender(name=f"worker {n}", base=f"http://127.0.0.1:{worker.health_port}")


@pytest.mark.long
def test_workers_and_api_ride_out_a_15_second_database_outage(
    cluster: PostgresServer, tmp_path: Path
) -> None:
    target = Target(url=_new_database(cluster, "outage"), key=generate_key())
    sink = Sink(tmp_path, delay=0.02)  # a group of 5 takes 0.1 s: the stop lands in one
    settings = {
        "MAILRAMP_WORKER_POLL_SECONDS": "0.2",
        "MAILRAMP_WORKER_BATCH_SIZE": "50",
        "MAILRAMP_WORKER_IN_FLIGHT_PER_MAILBOX": str(IN_FLIGHT_PER_MAILBOX),
    }
    fleet = Fleet(target.environment(**settings), tmp_path, health=True)
    watch = Watch()
    serve_home = tmp_path / "serve"
    serve_home.mkdir()
    port = free_port()
    api = httpx.Client(timeout=10)
    try:
        user_id, campaign_id = run_blocking(prepare(target, sink.port, RECIPIENTS))
        api_key = run_blocking(_api_key(target, user_id))
        api.base_url = httpx.URL(f"http://127.0.0.1:{port}/api/v1")
        api.headers["Authorization"] = f"Bearer {api_key}"
        with serving(port, cwd=serve_home, env=target.environment(**settings)) as server:
            senders = [Sender(name="serve", base=f"http://127.0.0.1:{port}")]
            senders += [_worker_sender(w, n) for n, w in enumerate(fleet.start(2))]
            wait_for(lambda: all(s.health() == 200 for s in senders), within=60)

            wait_for(lambda: sink.count() >= RECIPIENTS // 5, within=120, interval=0.05)
            _check_not_completed_early(target, campaign_id, watch)
            # Stop it while a group is being handed over: its outcomes cannot be stored.
            wait_for(lambda: _sending(target, campaign_id) > 0, within=30, interval=0.01)
            stop_cluster(cluster)
            stopped = time.monotonic()
            delivered_at_stop = sink.count()

            # The outage: everyone stays up and says the database is unavailable.
            time.sleep(3)
            during = {s.name: s.health() for s in senders}
            api_during = api.get(f"/campaigns/{campaign_id}")
            time.sleep(max(OUTAGE_SECONDS - (time.monotonic() - stopped), 0))
            fleet.check_alive()
            assert server.poll() is None, (serve_home / "serve.log").read_text()[-3000:]
            delivered_in_outage = sink.count() - delivered_at_stop
            start_cluster(cluster)
            returned = time.monotonic()
            returned_at = datetime.now(UTC)
            outage = returned - stopped

            # Recovery: every process healthy and sending again, the API serving.
            sent_at_return = {s.name: s.sent() for s in senders}
            api_back: float | None = None
            while time.monotonic() - returned < RECOVERY_BOUND_SECONDS:
                for sender in senders:
                    if sender.healthy_after is None and sender.health() == 200:
                        sender.healthy_after = time.monotonic() - returned
                    if sender.sending_after is None and sender.sent() > sent_at_return[sender.name]:
                        sender.sending_after = time.monotonic() - returned
                if api_back is None and api.get(f"/campaigns/{campaign_id}").status_code == 200:
                    api_back = time.monotonic() - returned
                if api_back is not None:
                    _check_not_completed_early(target, campaign_id, watch)
                if api_back is not None and all(
                    s.healthy_after is not None and s.sending_after is not None for s in senders
                ):
                    break
                time.sleep(0.2)

            def finished() -> bool:
                fleet.check_alive()
                return _check_not_completed_early(target, campaign_id, watch) == 0

            wait_for(finished, within=300, interval=0.5)
            campaign = api.get(f"/campaigns/{campaign_id}").json()
            counters = {s.name: s.sent() for s in senders}
            assert fleet.stop() == [0, 0]
        serve_log = (serve_home / "serve.log").read_text()
        records = run_blocking(
            query(
                target,
                "SELECT recipient_email, status, message_id, sent_at FROM email_tracking "
                "WHERE campaign_id = :c",
                c=campaign_id,
            )
        )
        stored, recomputed = run_blocking(read_metrics(target, user_id, campaign_id))
        deliveries = sink.stop()
    finally:
        api.close()
        fleet.kill_all()
        sink.kill()

    counts = status_counts(records)
    # Messages that left before the database went away and whose outcome was stored only
    # after it came back: the worker kept them until it could.
    arrived_at = {d.recipients[0]: d.at for d in deliveries}
    stored_late = sum(
        1
        for row in records
        if row["status"] == "sent"
        and arrived_at[row["recipient_email"]] < returned_at.timestamp()
        and row["sent_at"] >= returned_at
    )
    print(
        f"\ndatabase outage: {RECIPIENTS} recipients, {SENDERS} sending processes "
        f"(mailramp serve + 2 workers); PostgreSQL down {outage:.1f} s after "
        f"{delivered_at_stop} deliveries; {delivered_in_outage} more arrived during it (the "
        f"groups already marked sending); {stored_late} outcomes of messages sent before "
        "the return stored after it\n"
        f"  during: /healthz {during}, API {api_during.status_code} "
        f"{api_during.json().get('error', {}).get('code')}\n"
        f"  after the return: API serving after {_seconds(api_back)}; "
        + "; ".join(
            f"{s.name} healthy after {_seconds(s.healthy_after)}, sending after "
            f"{_seconds(s.sending_after)}"
            for s in senders
        )
        + f"\n  final states {counts}; {len(deliveries)} delivered; total_sent "
        f"{stored['total_sent']}; sent counters {counters}; {watch.polls} status polls "
        f"{dict(watch.statuses_seen)}"
    )

    # During the outage: up, and saying so; nothing new left without the database.
    assert set(during.values()) == {503}
    assert api_during.status_code == 503
    assert api_during.json()["error"]["code"] == "database_unavailable"
    assert delivered_in_outage <= SENDERS * IN_FLIGHT_PER_MAILBOX
    # Recovered by themselves within the bound.
    assert api_back is not None
    for sender in senders:
        assert sender.healthy_after is not None, sender
        assert sender.sending_after is not None, sender
    # Never completed early; completed at the end.
    assert watch.completed_early == []
    assert campaign["status"] == "completed"
    # Counts agree exactly, nothing twice.
    assert duplicates(deliveries) == ({}, {})
    sent = {row["recipient_email"]: row["message_id"] for row in records if row["status"] == "sent"}
    assert {d.recipients[0]: d.message_id for d in deliveries} == sent
    assert len(deliveries) == counts["sent"] == stored["total_sent"] == sum(counters.values())
    assert stored == recomputed
    # A commit whose answer was lost in the cut can leave a record `uncertain` (never sent);
    # nothing else may.
    assert set(counts) <= {"sent", "uncertain"}
    assert counts.get("uncertain", 0) <= SENDERS * IN_FLIGHT_PER_MAILBOX
    # The workers said it in one line each way, with no traceback.
    assert fleet.log_lines(PROBLEM) == []
    assert [line for line in serve_log.splitlines() if re.search(PROBLEM, line)] == []
    for worker in fleet.workers:
        log = worker.log.read_text()
        assert re.search(r"worker \S+: the database is unreachable .*; waiting for it", log)
        assert re.search(r"worker \S+: the database answers again", log)


def _sending(target: Target, campaign_id: str) -> int:
    rows = run_blocking(
        query(
            target,
            "SELECT count(*) AS n FROM email_tracking WHERE campaign_id = :c "
            "AND status = 'sending'",
            c=campaign_id,
        )
    )
    return int(rows[0]["n"])


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


async def _api_key(target: Target, user_id: str) -> str:
    runtime = await target.runtime()
    try:
        _, key = await runtime.auth.create_api_key(user_id, name="outage test")
        return key
    finally:
        await runtime.close()


# -- start-up with a database that cannot be used ------------------------------------------


def _start_up(command: list[str], environment: dict[str, str], home: Path) -> tuple[int, str]:
    result = subprocess.run(
        [*MAILRAMP, *command],
        cwd=home,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


def test_a_wrong_password_is_one_line_and_exit_status_5(
    cluster: PostgresServer, tmp_path: Path
) -> None:
    url = f"postgresql://{ROLE}:wrong-password@127.0.0.1:{cluster.port}/postgres"
    environment = clean_environment(
        MAILRAMP_DATABASE_URL=url, MAILRAMP_ENCRYPTION_KEYS=generate_key()
    )
    for command in (
        ["serve", "--port", str(free_port())],
        ["worker"],
        ["db", "upgrade"],
        ["db", "current"],
    ):
        code, output = _start_up(command, environment, tmp_path)
        assert (code, output) == (
            5,
            f"error: the database is unreachable (postgresql at 127.0.0.1:{cluster.port}/"
            f'postgres): password authentication failed for user "{ROLE}"\n',
        ), command
        assert "wrong-password" not in output


def test_an_unreachable_database_is_not_reported_as_empty(
    cluster: PostgresServer, tmp_path: Path
) -> None:
    closed = free_port()
    good = f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{cluster.port}"
    cases = {
        f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{closed}/mailramp": "Connect call failed",
        f"{good}/no_such_database": 'database "no_such_database" does not exist',
    }
    for url, reason in cases.items():
        environment = clean_environment(
            MAILRAMP_DATABASE_URL=url,
            MAILRAMP_ENCRYPTION_KEYS=generate_key(),
            MAILRAMP_AUTO_MIGRATE="false",
        )
        for command in (["serve", "--port", str(free_port())], ["worker"], ["db", "current"]):
            code, output = _start_up(command, environment, tmp_path)
            assert code == 5, (command, output)
            assert output.startswith("error: the database is unreachable ("), output
            assert reason in output and output.count("\n") == 1, output
            assert "empty" not in output

    # A database that answers and was never migrated is what "empty" is for.
    _create_database(cluster, "never_migrated")
    environment = clean_environment(
        MAILRAMP_DATABASE_URL=f"{good}/never_migrated",
        MAILRAMP_ENCRYPTION_KEYS=generate_key(),
        MAILRAMP_AUTO_MIGRATE="false",
    )
    code, output = _start_up(["worker"], environment, tmp_path)
    assert code == 5
    assert "the database schema is at nothing (empty database)" in output
