"""Crash safety on PostgreSQL: 4 `mailramp worker` processes, 2,000 recipients, a worker
killed with SIGKILL 5 times at random moments. No address may receive two emails, and every
record must end `sent`, `bounced`, `failed` or `uncertain`."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from mailramp.config import Settings
from mailramp.kit.secrets import generate_key
from mailramp.runtime import open_runtime
from tests.conftest import PostgresTarget, new_postgres_database
from tests.support.loops import run_blocking
from tests.support.scenario import make_due_now, smtp_sender
from tests.support.smtp import SmtpServer

RECIPIENTS = 2000
WORKERS = 4
KILLS = 5
BOUNCING = {f"r{n}@example.com" for n in range(0, RECIPIENTS, 100)}  # 20 refuse with 550


async def _prepare(url: str, key: str, smtp_port: int) -> tuple[str, str]:
    settings = Settings(database_url=url, encryption_keys=key)
    runtime = await open_runtime(settings)
    try:
        user, mailbox = await smtp_sender(
            runtime, email="crash@acme.com", smtp_port=smtp_port, daily_limit=10_000
        )
        now = datetime.now(UTC)
        campaign = await runtime.campaigns.create_campaign(
            user.user_id,
            mailbox_id=mailbox.mailbox_id,
            campaign_name="Crash test",
            subject="Hi {{first_name}}",
            message="Hello {{first_name}}",
            duration=2,
            start_time=now - timedelta(minutes=1),
        )
        rows = "".join(f"r{n}@example.com,R{n}\n" for n in range(RECIPIENTS))
        report = await runtime.sending.import_recipients(
            user.user_id, campaign.campaign_id, io.BytesIO(f"email,first_name\n{rows}".encode())
        )
        assert report.accepted == RECIPIENTS
        # Everything due now, so the run measures crashes, not the plan's pacing.
        await make_due_now(runtime, campaign.campaign_id)
        return user.user_id, campaign.campaign_id
    finally:
        await runtime.close()


async def _counts(url: str, key: str, user_id: str, campaign_id: str) -> dict[str, int]:
    runtime = await open_runtime(Settings(database_url=url, encryption_keys=key))
    try:
        return await runtime.sending.status_counts(user_id, campaign_id)
    finally:
        await runtime.close()


def _start_worker(environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "mailramp", "worker"],
            env=environment,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def test_sigkilled_workers_never_send_twice(postgres: PostgresTarget, tmp_path: Path) -> None:
    url = run_blocking(new_postgres_database(postgres))
    key = generate_key()
    server = SmtpServer(accounts={"crash@acme.com": "pw"}).start()
    server.inbox.data_delay = 0.02  # ~10 s of sending, so every kill lands mid-run
    for address in BOUNCING:
        server.inbox.rcpt_replies[address] = ["550 5.1.1 No such user!"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MAILRAMP_")} | {
        "MAILRAMP_DATABASE_URL": url,
        "MAILRAMP_ENCRYPTION_KEYS": key,
        "MAILRAMP_ALLOW_PRIVATE_HOSTS": "true",
        "MAILRAMP_AUTO_MIGRATE": "false",
        "MAILRAMP_WORKER_LEASE_SECONDS": "4",
        "MAILRAMP_WORKER_POLL_SECONDS": "0.2",
        "MAILRAMP_WORKER_BATCH_SIZE": "50",
        "MAILRAMP_LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "workers.log"
    rng = random.Random()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        user_id, campaign_id = run_blocking(_prepare(url, key, server.port))
        workers = [_start_worker(environment, log) for _ in range(WORKERS)]
        kills = 0
        deadline = time.monotonic() + 180
        time.sleep(1.0)  # let the workers start sending
        while kills < KILLS and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.3, 2.0))
            victim = rng.randrange(WORKERS)
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait()
            kills += 1
            workers[victim] = _start_worker(environment, log)
        assert kills == KILLS

        while time.monotonic() < deadline:
            counts = run_blocking(_counts(url, key, user_id, campaign_id))
            if counts["pending"] == 0 and counts["sending"] == 0:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the workers did not finish: {counts}\n{log.read_text()[-3000:]}")

        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        assert [worker.wait(timeout=30) for worker in workers] == [0] * WORKERS

        received = server.inbox.count_by_recipient()
        twice = {address: n for address, n in received.items() if n > 1}
        assert twice == {}
        final = {status: n for status, n in counts.items() if n}
        print(
            f"\ncrash test: {KILLS} SIGKILLs, final record states {final}, "
            f"{len(received)} addresses received mail, max copies per address "
            f"{max(received.values(), default=0)}"
        )
        assert set(final) <= {"sent", "bounced", "failed", "uncertain"}
        assert sum(final.values()) == RECIPIENTS
        # A refused address is bounced, or uncertain if a kill hit its send; never delivered.
        assert final.get("bounced", 0) <= len(BOUNCING)
        assert not BOUNCING & set(received)
        # Every `sent` record arrived; `uncertain` ones may or may not have.
        assert final["sent"] <= len(received) <= final["sent"] + final.get("uncertain", 0)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        server.stop()


async def _lease_holders(url: str, key: str, campaign_id: str) -> int:
    runtime = await open_runtime(Settings(database_url=url, encryption_keys=key))
    try:
        async with runtime.store.engine.connect() as connection:  # type: ignore[attr-defined]
            result = await connection.execute(
                text(
                    "SELECT count(*) FROM email_tracking WHERE campaign_id = :c "
                    "AND lease_owner IS NOT NULL"
                ),
                {"c": campaign_id},
            )
            return int(result.scalar_one())
    finally:
        await runtime.close()


def test_sigterm_finishes_in_flight_sends_and_releases_the_rest(
    postgres: PostgresTarget, tmp_path: Path
) -> None:
    url = run_blocking(new_postgres_database(postgres))
    key = generate_key()
    server = SmtpServer(accounts={"crash@acme.com": "pw"}).start()
    server.inbox.data_delay = 0.1  # slow enough that SIGTERM lands mid-batch
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MAILRAMP_")} | {
        "MAILRAMP_DATABASE_URL": url,
        "MAILRAMP_ENCRYPTION_KEYS": key,
        "MAILRAMP_ALLOW_PRIVATE_HOSTS": "true",
        "MAILRAMP_AUTO_MIGRATE": "false",
        "MAILRAMP_WORKER_POLL_SECONDS": "0.2",
    }
    try:
        user_id, campaign_id = run_blocking(_prepare(url, key, server.port))
        worker = _start_worker(environment, tmp_path / "worker.log")
        while len(server.inbox.messages) < 5:
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        counts = run_blocking(_counts(url, key, user_id, campaign_id))
        assert counts["sending"] == 0 and counts["uncertain"] == 0
        assert counts["sent"] == len(server.inbox.messages)  # what was in flight finished
        assert 5 <= counts["sent"] < RECIPIENTS
        assert counts["pending"] == RECIPIENTS - counts["sent"] - counts["bounced"]
        assert run_blocking(_lease_holders(url, key, campaign_id)) == 0
    finally:
        server.stop()
