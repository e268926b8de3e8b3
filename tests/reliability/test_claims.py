"""Concurrent claims (docs/reliability.md, item 4): 16 processes drain 25,000 no-op sends
from one PostgreSQL database through the worker's own repository calls (lifecycle,
`claim_due` — `FOR UPDATE SKIP LOCKED` —, `start_sending`, `record_results`), without SMTP
(tests/reliability/support_claimer.py).

What must hold: every record claimed exactly once (each process lists the ids it claimed;
the database agrees: one attempt per record), all 25,000 drained and `sent`, the
campaign's `total_sent` 25,000 and the campaign completed. Claims per second are printed
(`pytest -s`), never asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailramp.campaigns.repository import Slot
from mailramp.kit.ids import new_object_id
from mailramp.kit.secrets import generate_key
from mailramp.tracking.models import EmailTracking
from tests.conftest import PostgresTarget, new_postgres_database
from tests.reliability.support_fleet import query
from tests.scale.scenario import Target
from tests.support.loops import run_blocking
from tests.support.processes import clean_environment
from tests.support.scenario import smtp_sender

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

RECORDS = 25_000
PROCESSES = 16
BATCH = 200  # the worker's default batch size
REPOSITORY = Path(__file__).resolve().parents[2]
CLAIMER = [sys.executable, "-m", "tests.reliability.support_claimer"]


async def _fill(target: Target) -> tuple[str, str]:
    """A campaign of RECORDS recipients, all due now, through the store's bulk import (the
    one `mailramp campaign import` uses, minus the CSV); returns (user_id, campaign_id)."""
    runtime = await target.runtime()
    try:
        user, mailbox = await smtp_sender(
            runtime, email="claims@acme.com", smtp_port=25, daily_limit=10_000
        )
        now = datetime.now(UTC)
        campaign = await runtime.campaigns.create_campaign(
            user.user_id,
            mailbox_id=mailbox.mailbox_id,
            campaign_name="Claims",
            subject="Hello",
            message="Hello",
            duration=24 * 11,  # 10,000 a day: the window fits the plan the import checks
            start_time=now - timedelta(minutes=1),
        )

        async def batches() -> AsyncIterator[list[EmailTracking]]:
            for start in range(0, RECORDS, 5000):
                yield [
                    EmailTracking(
                        id=new_object_id(),
                        campaign_id=campaign.campaign_id,
                        user_id=user.user_id,
                        mailbox_id=mailbox.mailbox_id,
                        recipient_email=f"c{n}@example.com",
                        created_at=now,
                        updated_at=now,
                    )
                    for n in range(start, min(start + 5000, RECORDS))
                ]

        def due_now(zones: Sequence[str | None]) -> Sequence[Slot]:
            return [Slot(campaign.mailbox_id, now - timedelta(seconds=1))] * len(zones)

        counts = await runtime.store.import_recipients(campaign, batches(), plan=due_now)
        assert counts.accepted == counts.total_recipients == RECORDS
        return user.user_id, campaign.campaign_id
    finally:
        await runtime.close()


def test_sixteen_workers_claim_each_of_25000_records_exactly_once(
    postgres: PostgresTarget, tmp_path: Path
) -> None:
    target = Target(url=run_blocking(new_postgres_database(postgres)), key=generate_key())
    filled = time.monotonic()
    user_id, campaign_id = run_blocking(_fill(target))
    fill_seconds = time.monotonic() - filled

    outputs = [tmp_path / f"claimed{n}.txt" for n in range(PROCESSES)]
    processes = [
        subprocess.Popen(
            [*CLAIMER, target.url, str(out), str(BATCH)],
            cwd=REPOSITORY,
            env=clean_environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for out in outputs
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        for process in processes:  # all start together
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        summaries = []
        for process in processes:
            out, _ = process.communicate(timeout=600)
            assert process.returncode == 0
            summaries.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()

    claims = Counter(line for output in outputs for line in output.read_text().splitlines() if line)
    records = run_blocking(
        query(
            target,
            "SELECT _id, status, attempts, lease_owner FROM email_tracking WHERE campaign_id = :c",
            c=campaign_id,
        )
    )
    matrix = run_blocking(
        query(
            target, "SELECT total_sent FROM campaign_matrix WHERE campaign_id = :c", c=campaign_id
        )
    )[0]
    campaign = run_blocking(
        query(
            target,
            "SELECT status FROM campaign_creation_table WHERE campaign_id = :c",
            c=campaign_id,
        )
    )[0]

    seconds = max(s["finished"] for s in summaries) - min(s["started"] for s in summaries)
    per_process = sorted(s["claimed"] for s in summaries)
    print(
        f"\nconcurrent claims: {RECORDS} no-op sends, {PROCESSES} processes, batches of "
        f"{BATCH}: {RECORDS / seconds:.0f} claims/s ({seconds:.1f} s from the first claim to "
        f"the last outcome stored; filling the queue took {fill_seconds:.1f} s)\n"
        f"  claimed per process: min {per_process[0]}, max {per_process[-1]}; "
        f"passes {sum(s['passes'] for s in summaries)}; most claims of one record "
        f"{max(claims.values())}"
    )

    # Every record claimed exactly once, by the processes' own account ...
    assert len(claims) == RECORDS
    assert set(claims.values()) == {1}
    assert set(claims) == {row["_id"] for row in records}
    assert sum(per_process) == RECORDS
    # ... and by the database's: one attempt each, all sent, nothing still held.
    assert Counter(row["status"] for row in records) == {"sent": RECORDS}
    assert {row["attempts"] for row in records} == {1}
    assert {row["lease_owner"] for row in records} == {None}
    assert matrix["total_sent"] == RECORDS
    assert campaign["status"] == "completed"
    # Everybody worked: the claims were shared, not taken by one process in turn.
    assert min(per_process) > 0
    assert user_id
