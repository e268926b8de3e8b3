"""Scale-out on PostgreSQL: N `mailramp serve` and M `mailramp worker` processes sharing one
database, against a baseline of 1 server and 1 worker measured in the same run with the
same number of recipients and the same tracking hits (tests/scale/scenario.py).

    .venv/bin/python -m bench.scale [--recipients 10000] [--servers 2] [--workers 4]

Sending is measured from the first recorded send to the last (`sent_at`), and also from
starting the workers to every record final; tracking as hits per second over the servers.
Each run is checked as the scale test checks it: one message per recipient, every record
`sent`, counters equal to their recomputation and to the hits made.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections import Counter
from pathlib import Path

import asyncpg
from tests.scale.scenario import ScaleRun, Target, run_scale_out
from tests.support.postgres import PostgresServer

from mailramp.kit.secrets import generate_key
from mailramp.storage.sql import SqlStore
from mailramp.storage.sql.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "build" / "bench-scale.json"


async def _new_database(server: PostgresServer, name: str) -> str:
    admin = await asyncpg.connect(server.admin_url.replace("postgresql://", "postgres://"))
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    url = server.url(name)
    store = SqlStore.from_url(url)
    try:
        await upgrade(store.engine)
    finally:
        await store.close()
    return url


def _check(run: ScaleRun) -> None:
    """What the scale test asserts, in short: a wrong run measures nothing."""
    per_recipient = Counter(address for d in run.deliveries for address in d.recipients)
    assert len(per_recipient) == run.recipients and set(per_recipient.values()) == {1}
    assert {status: n for status, n in run.statuses.items() if n} == {"sent": run.recipients}
    assert run.worker_errors == [] and run.hits.wrong == []
    expected = run.plan.expected_counters(run.recipients)
    assert run.stored == run.recomputed
    assert {name: run.stored[name] for name in expected} == expected


def _measure(server: PostgresServer, name: str, **shape: int) -> ScaleRun:
    url = asyncio.run(_new_database(server, name))
    with tempfile.TemporaryDirectory() as directory:
        run = run_scale_out(Target(url, generate_key()), Path(directory), **shape)
    _check(run)
    return run


def _line(label: str, run: ScaleRun) -> str:
    return (
        f"{label:28s} {run.sends_per_second:6.0f} sends/s ({run.send_span_seconds:5.1f} s; "
        f"{run.sends_per_second_wall:4.0f}/s from start-up)   "
        f"{run.hits.per_second:5.0f} tracking hits/s ({run.hits.requests} hits)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    arguments = parser.parse_args()
    recipients = arguments.recipients

    server = PostgresServer.start()
    try:
        baseline = _measure(server, "scale_baseline", recipients=recipients, servers=1, workers=1)
        scaled = _measure(
            server,
            "scale_out",
            recipients=recipients,
            servers=arguments.servers,
            workers=arguments.workers,
        )
    finally:
        server.stop()

    sends = scaled.sends_per_second / baseline.sends_per_second
    wall = scaled.sends_per_second_wall / baseline.sends_per_second_wall
    hits = scaled.hits.per_second / baseline.hits.per_second
    print(f"{recipients} recipients each run, PostgreSQL on loopback, one SMTP sink process")
    print(_line("baseline: 1 server, 1 worker", baseline))
    print(_line(f"{arguments.servers} servers, {arguments.workers} workers", scaled))
    print(
        f"ratio against the baseline: sending {sends:.2f} x ({wall:.2f} x from start-up), "
        f"tracking {hits:.2f} x"
    )
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {
                "baseline": baseline.summary(),
                "scaled": scaled.summary(),
                "ratio": {
                    "sends_per_second": round(sends, 2),
                    "sends_per_second_wall": round(wall, 2),
                    "tracking_hits_per_second": round(hits, 2),
                },
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
