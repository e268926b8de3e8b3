"""Crashes (docs/reliability.md, item 1): 4 `mailramp worker` processes on PostgreSQL send a
4,000-recipient campaign while a random one of them is SIGKILLed 10 times, a replacement
started after each kill.

What a user must see: no address and no Message-ID arrives twice at the SMTP sink; once
the leases of the dead workers ran out and one lifecycle sweep ran, every record is final
(`sent`, `bounced`, `uncertain`…) and the campaign `completed`; and each kill leaves at most
the sends that worker had in flight `uncertain` — exactly those records, read from the
database right after the kill (a dead process changes nothing, and nobody else touches a
leased record before its lease runs out).

The kills are spread over the run by progress (kill k once about k/11 of the messages have
arrived, plus a random offset), so they land mid-send on any machine. Figures per kill are
printed (`pytest -s`); nothing is timed.

The second test: SIGTERM lets a worker finish its in-flight sends and give back the rest.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailramp.kit.secrets import generate_key
from tests.conftest import PostgresTarget, new_postgres_database
from tests.reliability.support_fleet import (
    FINAL,
    Fleet,
    owner_prefix,
    query,
    status_counts,
)
from tests.reliability.support_sink import Sink, duplicates, wait_for
from tests.scale.scenario import Target, prepare, read_metrics, recipient
from tests.support.loops import run_blocking
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

RECIPIENTS = 4_000
WORKERS = 4
KILLS = 10
LEASE_SECONDS = 8
"""Short, so the dead workers' records come back (or turn `uncertain`) within the run; long
enough that a busy machine does not expire a live worker's lease."""
IN_FLIGHT_PER_MAILBOX = 5
BOUNCING = frozenset(recipient(n) for n in range(0, RECIPIENTS, 100))  # 1% refused with 550
SINK_DELAY = 0.004
"""Seconds the sink takes to answer DATA: the run lasts long enough for 10 kills."""


@dataclass
class Kill:
    """One SIGKILL and what the victim held at that moment."""

    pid: int
    delivered_before: int
    in_flight: set[str]
    """Its records in `sending`: marked, maybe handed to the SMTP server, not recorded."""
    claimed: int
    """Its records leased but not yet `sending`: they go back to the queue."""
    uncertain: set[str] = field(default_factory=set)


def _reached(sink: Sink, deliveries: int) -> Callable[[], bool]:
    return lambda: sink.count() >= deliveries


def _kill_points(rng: random.Random) -> list[int]:
    """Deliveries after which each kill happens: kill k after about k/11 of the messages."""
    step = RECIPIENTS // (KILLS + 1)
    return [k * step + rng.randrange(step // 2) for k in range(1, KILLS + 1)]


def test_sigkilled_workers_never_send_twice_and_leave_only_their_in_flight_sends_uncertain(
    postgres: PostgresTarget, tmp_path: Path
) -> None:
    target = Target(url=run_blocking(new_postgres_database(postgres)), key=generate_key())
    sink = Sink(tmp_path, delay=SINK_DELAY, refuse=BOUNCING)
    fleet = Fleet(
        target.environment(
            MAILRAMP_WORKER_LEASE_SECONDS=str(LEASE_SECONDS),
            MAILRAMP_WORKER_POLL_SECONDS="0.2",
            MAILRAMP_WORKER_BATCH_SIZE="50",
            MAILRAMP_WORKER_IN_FLIGHT_PER_MAILBOX=str(IN_FLIGHT_PER_MAILBOX),
        ),
        tmp_path,
    )
    seed = int(os.environ.get("MAILRAMP_TEST_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    kills: list[Kill] = []
    try:
        user_id, campaign_id = run_blocking(prepare(target, sink.port, RECIPIENTS))
        started = time.monotonic()
        fleet.start(WORKERS)
        for point in _kill_points(rng):
            wait_for(_reached(sink, point), within=300, interval=0.05)
            fleet.check_alive()
            victim = rng.choice(fleet.workers)
            fleet.kill(victim)
            killed_at = sink.count()
            # A COMMIT the victim sent just before dying may still be applied: let it land.
            time.sleep(0.3)
            held = run_blocking(
                query(
                    target,
                    "SELECT _id, status FROM email_tracking WHERE lease_owner LIKE :owner",
                    owner=owner_prefix(victim.pid) + "%",
                )
            )
            kills.append(
                Kill(
                    pid=victim.pid,
                    delivered_before=killed_at,
                    in_flight={row["_id"] for row in held if row["status"] == "sending"},
                    claimed=sum(1 for row in held if row["status"] == "pending"),
                )
            )
            fleet.start()

        def drained() -> bool:
            fleet.check_alive()
            rows = run_blocking(
                query(
                    target,
                    "SELECT count(*) AS n FROM email_tracking WHERE campaign_id = :c "
                    "AND status = 'pending'",
                    c=campaign_id,
                )
            )
            return bool(rows[0]["n"] == 0)

        wait_for(drained, within=300, interval=0.5)
        send_seconds = time.monotonic() - started
        assert fleet.stop() == [0] * WORKERS

        # Lease expiry plus one sweep: after that nothing may be left in between.
        def leases_expired() -> bool:
            rows = run_blocking(
                query(
                    target,
                    "SELECT count(*) AS n FROM email_tracking WHERE campaign_id = :c "
                    "AND lease_expires_at >= now()",
                    c=campaign_id,
                )
            )
            return bool(rows[0]["n"] == 0)

        wait_for(leases_expired, within=LEASE_SECONDS + 30, interval=0.5)
        sweep = run_blocking(_sweep(target))
        records = run_blocking(
            query(
                target,
                "SELECT _id, recipient_email, status, message_id FROM email_tracking "
                "WHERE campaign_id = :c",
                c=campaign_id,
            )
        )
        campaign = run_blocking(
            query(
                target,
                "SELECT status FROM campaign_creation_table WHERE campaign_id = :c",
                c=campaign_id,
            )
        )[0]
        stored, recomputed = run_blocking(read_metrics(target, user_id, campaign_id))
        deliveries = sink.stop()
    finally:
        fleet.kill_all()
        sink.kill()

    counts = status_counts(records)
    by_id = {row["_id"]: row for row in records}
    arrived = Counter(address for d in deliveries for address in d.recipients)
    uncertain = {row["_id"] for row in records if row["status"] == "uncertain"}
    lines = [
        f"\ncrashes: {RECIPIENTS} recipients, {WORKERS} workers, {KILLS} SIGKILLs "
        f"(seed {seed}; lease {LEASE_SECONDS} s), {send_seconds:.1f} s until nothing pending",
        "  kill  pid      delivered  in flight  claimed  -> uncertain (of which arrived)",
    ]
    for n, kill in enumerate(kills, 1):
        kill.uncertain = kill.in_flight & uncertain
        arrived_anyway = sum(arrived[by_id[i]["recipient_email"]] for i in kill.uncertain)
        lines.append(
            f"  {n:>4}  {kill.pid:<8} {kill.delivered_before:>9}  {len(kill.in_flight):>9}  "
            f"{kill.claimed:>7}  -> {len(kill.uncertain)} ({arrived_anyway})"
        )
    lines.append(
        f"  final states {dict(sorted(counts.items()))}; the last sweep turned "
        f"{sweep} record(s) uncertain; {len(deliveries)} messages arrived"
    )
    print("\n".join(lines))

    # Nobody got two messages, and no Message-ID went out twice.
    assert duplicates(deliveries) == ({}, {})
    # Every record final after lease expiry plus one sweep; the campaign completed.
    assert len(records) == RECIPIENTS
    assert set(counts) <= FINAL - {"cancelled", "expired"}, counts
    assert campaign["status"] == "completed"
    # Each kill: what the victim had in flight, and only that, ended `uncertain` — at most
    # one group per mailbox (the worker marks IN_FLIGHT_PER_MAILBOX at a time).
    for kill in kills:
        assert kill.uncertain == kill.in_flight
        assert len(kill.in_flight) <= IN_FLIGHT_PER_MAILBOX
    assert uncertain == set().union(*(kill.in_flight for kill in kills))
    # What arrived is what the records say: each `sent` record exactly once under its own
    # Message-ID, refused addresses never, `uncertain` ones at most once.
    message_ids = {row["recipient_email"]: row["message_id"] for row in records}
    assert all(d.message_id == message_ids[d.recipients[0]] for d in deliveries)
    for row in records:
        expected = {"sent": {1}, "uncertain": {0, 1}}.get(row["status"], {0})
        assert arrived[row["recipient_email"]] in expected, row
    assert {row["recipient_email"] for row in records if row["status"] == "bounced"} <= BOUNCING
    assert not BOUNCING & set(arrived)
    # The campaign's counters agree with its records.
    assert stored == recomputed
    assert stored["total_sent"] == counts.get("sent", 0) + counts.get("bounced", 0)


async def _sweep(target: Target) -> int:
    """One lifecycle pass, as a worker's next pass would run it; records it made uncertain."""
    runtime = await target.runtime()
    try:
        report = await runtime.store.run_lifecycle(now=datetime.now(UTC))
        return report.uncertain_records
    finally:
        await runtime.close()


def test_sigterm_finishes_in_flight_sends_and_releases_the_rest(
    postgres: PostgresTarget, tmp_path: Path
) -> None:
    recipients = 2000
    target = Target(url=run_blocking(new_postgres_database(postgres)), key=generate_key())
    server = SmtpServer().start()
    server.inbox.data_delay = 0.1  # slow enough that SIGTERM lands mid-batch
    server.inbox.accounts["scale@acme.com"] = "pw"
    fleet = Fleet(target.environment(MAILRAMP_WORKER_POLL_SECONDS="0.2"), tmp_path)
    try:
        _, campaign_id = run_blocking(prepare(target, server.port, recipients))
        (worker,) = fleet.start()
        wait_for(lambda: len(server.inbox.messages) >= 5, within=120, interval=0.05)
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=60) == 0
        rows = run_blocking(
            query(
                target,
                "SELECT status, lease_owner FROM email_tracking WHERE campaign_id = :c",
                c=campaign_id,
            )
        )
    finally:
        fleet.kill_all()
        server.stop()
    counts = status_counts(rows)
    # What was in flight finished and was recorded; the rest is pending, free to claim.
    assert set(counts) == {"sent", "pending"}
    assert counts["sent"] == len(server.inbox.messages)
    assert 5 <= counts["sent"] < recipients
    assert [row for row in rows if row["lease_owner"] is not None] == []
