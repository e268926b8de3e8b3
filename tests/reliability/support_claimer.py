"""One no-op sender for the concurrent-claims test: a process that drains the send queue
through the worker's own repository calls, without talking SMTP.

Each pass is a worker's pass (sending/worker.py `SendingWorker.tick`) with the provider
left out: the lifecycle step, `claim_due`, `start_sending` (the records become `sending`
with their Message-ID) and `record_results` with every allowed record `sent`. The ids of
every claimed record are written to OUTPUT, one a line, so the test can count how often
each record was claimed. The process says `ready` once connected, starts on a `go` line
on stdin, stops when a claim comes back empty, and prints a JSON summary.

    python -m tests.reliability.support_claimer DATABASE_URL OUTPUT [BATCH]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta

from mailramp.sending.message import message_id_for
from mailramp.sending.models import Outcome, SendResult
from mailramp.sending.repository import Lease
from mailramp.sending.worker import new_worker_id
from mailramp.storage.sql import SqlStore

LEASE = timedelta(minutes=10)
"""Far longer than the run: a record claimed twice is a bug, never an expired lease."""
SENDER = "claims@acme.com"


async def drain(database_url: str, batch: int) -> tuple[dict[str, object], list[str]]:
    """Claim and record until the queue is empty: a summary, and every id claimed."""
    store = SqlStore.from_url(database_url, pool_size=1, max_overflow=0)
    worker_id = new_worker_id()
    claimed: list[str] = []
    try:
        await store.ping()
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("expected 'go'")
        passes = 0
        started = finished = time.time()
        while True:
            now = datetime.now(UTC)
            await store.run_lifecycle(now=now)
            records = await store.claim_due(Lease(worker_id, now, now + LEASE), limit=batch)
            if not records:
                break
            passes += 1
            claimed.extend(record.id for record in records)
            allowed = await store.start_sending(
                Lease(worker_id, now, now + LEASE),
                {r.id: message_id_for(r.id, SENDER) for r in records},
            )
            await store.record_results(
                [
                    SendResult(
                        record_id=r.id,
                        campaign_id=r.campaign_id,
                        user_id=r.user_id,
                        recipient_email=r.recipient_email,
                        outcome=Outcome.SENT,
                    )
                    for r in records
                    if r.id in allowed
                ],
                now=datetime.now(UTC),
            )
            finished = time.time()
    finally:
        await store.close()
    summary = {
        "worker_id": worker_id,
        "claimed": len(claimed),
        "passes": passes,
        "started": started,
        "finished": finished,
    }
    return summary, claimed


def main() -> None:
    database_url, output = sys.argv[1], sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    summary, claimed = asyncio.run(drain(database_url, batch))
    with open(output, "w", encoding="utf-8") as ids:
        ids.write("".join(f"{record_id}\n" for record_id in claimed))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
