"""Scale-out on PostgreSQL: 2 `mailramp serve` processes (as if behind a reverse proxy) and
4 `mailramp worker` processes share one database and nothing else. 4,000 recipients are
all due at once; every one must get exactly one email, and the tracking hits spread over
both servers (repeats racing each other on the two) must leave the campaign's counters
equal to a recomputation and to what was sent.

Prints the throughput (`pytest -s`) and writes it to build/scale-postgres.json. No timing
is asserted: the deadline only keeps a hung run from hanging CI.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mailramp.kit.secrets import generate_key
from tests.conftest import PostgresTarget, new_postgres_database
from tests.scale.scenario import Target, recipient, run_scale_out
from tests.support.loops import run_blocking

RECIPIENTS = 4_000
SERVERS = 2
WORKERS = 4
REPORT = Path(__file__).resolve().parents[2] / "build" / "scale-postgres.json"

pytestmark = [pytest.mark.postgres, pytest.mark.scale, pytest.mark.long]


def test_servers_and_workers_share_the_work_through_the_database(
    postgres: PostgresTarget, tmp_path: Path
) -> None:
    target = Target(url=run_blocking(new_postgres_database(postgres)), key=generate_key())
    run = run_scale_out(
        target, tmp_path, recipients=RECIPIENTS, servers=SERVERS, workers=WORKERS, timeout=600
    )
    plan = run.plan

    # Sending: every record final, all of them sent, none left in doubt.
    assert run.worker_exit_codes == [0] * WORKERS
    assert run.worker_errors == []
    assert sum(run.statuses.values()) == RECIPIENTS
    assert {status: n for status, n in run.statuses.items() if n} == {"sent": RECIPIENTS}
    assert run.statuses.get("uncertain", 0) == 0

    # The sink: each recipient exactly one message, carrying the Message-ID the database
    # holds for that recipient.
    assert len(run.deliveries) == RECIPIENTS
    per_recipient = Counter(address for d in run.deliveries for address in d.recipients)
    duplicates = {address: n for address, n in per_recipient.items() if n > 1}
    assert duplicates == {}
    assert set(per_recipient) == {recipient(n) for n in range(RECIPIENTS)}
    message_ids = Counter(d.message_id for d in run.deliveries)
    assert len(message_ids) == RECIPIENTS and max(message_ids.values()) == 1
    assert {d.recipients[0]: d.message_id for d in run.deliveries} == run.message_ids

    # Tracking: every hit answered correctly, half of them by each server.
    expected_events = plan.expected_events()
    assert run.hits.wrong == []
    assert run.hits.requests == sum(expected_events.values())
    assert set(run.hits.per_server) == set(range(SERVERS))
    assert max(run.hits.per_server.values()) - min(run.hits.per_server.values()) <= 1

    # Counters: stored == recomputed from the records == counted from the event log ==
    # what the test did (repeats, even racing on two servers, count once).
    expected = plan.expected_counters(RECIPIENTS)
    assert run.stored == run.recomputed
    assert {name: run.stored[name] for name in expected} == expected
    assert run.stored["open_rate"] == round(100 * plan.opens / RECIPIENTS, 2)
    assert run.stored["click_rate"] == round(100 * plan.clicks / RECIPIENTS, 2)
    assert {
        name: run.from_events[name] for name in run.from_events if name.startswith("total")
    } == {
        name: expected[name]
        for name in (
            "total_opened",
            "total_human_opened",
            "total_clicks",
            "total_human_clicks",
            "total_unsubscribed",
        )
    }
    assert {kind: run.from_events[f"{kind}_events"] for kind in expected_events} == expected_events
    assert run.from_events["machine_events"] == 0
    assert run.suppressed == plan.unsubscribes

    summary = run.summary()
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"\nscale-out on PostgreSQL: {RECIPIENTS} recipients, {WORKERS} workers, "
        f"{SERVERS} servers\n"
        f"  sending:  {summary['sends_per_second']:.0f} sends/s (first to last send, "
        f"{summary['send_span_seconds']:.1f} s); {summary['sends_per_second_wall']:.0f} "
        f"sends/s from worker start to all final ({summary['send_wall_seconds']:.1f} s)\n"
        f"  tracking: {summary['tracking_hits_per_second']:.0f} hits/s across {SERVERS} servers "
        f"({run.hits.requests} hits in {summary['tracking_seconds']:.1f} s, "
        f"{summary['tracking_hits_per_server']} per server)\n"
        f"  CPU ms per send {summary['cpu_ms_per_send']}, per hit {summary['cpu_ms_per_hit']}\n"
        f"  whole run {summary['total_seconds']:.0f} s; written to {REPORT}"
    )
