"""Sending throughput: 10,000 emails into a local SMTP sink with all of mailramp's
bookkeeping (lease, `sending` mark, send, outcome, metrics), on SQLite and on PostgreSQL.

Measured in the same run against the same sink:
- the ceiling: a bare aiosmtplib loop over as many connections as mailramp uses;
- what a user would script instead: a plain smtplib loop on one connection.

    .venv/bin/python -m bench.send [--messages N] [--mailboxes M] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import smtplib
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib
from tests.support.postgres import PostgresServer, free_port
from tests.support.scenario import make_due_now

from mailramp.config import Settings
from mailramp.kit.secrets import generate_key
from mailramp.runtime import Runtime, open_runtime

ROOT = Path(__file__).resolve().parents[1]

BODY = "Hello {{first_name}},\n\n" + ("This is a benchmark message line. " * 120) + "\n"


class Sink:
    """The sink process; `stop()` returns how many messages it received."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "sink.py"), str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> int:
        self.process.terminate()
        out, _ = self.process.communicate(timeout=30)
        return int(out.strip().splitlines()[-1])


def _message(n: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "bench@acme.com"
    message["To"] = f"r{n}@example.com"
    message["Subject"] = f"Hello R{n}"
    message.set_content(BODY.replace("{{first_name}}", f"R{n}"))
    return message


async def bare_aiosmtplib(port: int, messages: int, connections: int) -> float:
    """Messages per second with no bookkeeping at all: the ceiling."""
    prepared = [_message(n) for n in range(messages)]

    async def one_connection(part: list[EmailMessage]) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        await client.login("bench@acme.com", "pw")
        for message in part:
            await client.send_message(message)
        await client.quit()

    parts = [prepared[i::connections] for i in range(connections)]
    started = time.perf_counter()
    await asyncio.gather(*(one_connection(part) for part in parts))
    return messages / (time.perf_counter() - started)


def plain_smtplib(port: int, messages: int) -> float:
    """Messages per second of a plain smtplib loop on one connection."""
    prepared = [_message(n) for n in range(messages)]
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.login("bench@acme.com", "pw")
        for message in prepared:
            client.send_message(message)
    return messages / (time.perf_counter() - started)


WORKER_SETTINGS = {
    "worker_batch_size": 500,
    "worker_in_flight_per_mailbox": 10,
    # Throughput, not a human pace: no pause between two emails of one mailbox.
    "send_gap_min_seconds": 0,
    "send_gap_max_seconds": 0,
    # The mailboxes are the benchmark's own: warm from the start, no ramp-up.
    "ramp_new_mailboxes": False,
}


class EngineHooks(Protocol):
    """What another benchmark runs around the send loop (bench/webhooks.py: endpoints made
    before the import, their dispatcher running beside the worker)."""

    async def prepare(self, runtime: Runtime, user_id: str) -> None: ...

    async def during(self, runtime: Runtime) -> None: ...


async def mailramp_engine(
    database_url: str,
    port: int,
    messages: int,
    mailboxes: int,
    processes: int = 0,
    hooks: EngineHooks | None = None,
) -> float:
    """Messages per second through mailramp's worker, with all bookkeeping: in this process,
    or in `processes` separate `mailramp worker` processes; `hooks` run around it."""
    key = generate_key()
    settings = Settings(
        database_url=database_url,
        encryption_keys=key,
        allow_private_hosts=True,
        **WORKER_SETTINGS,  # type: ignore[arg-type]
    )
    runtime = await open_runtime(settings)
    try:
        user = await runtime.accounts.create_user(user_name="Bench", login_id="bench")
        if hooks is not None:
            await hooks.prepare(runtime, user.user_id)
        campaigns = []
        per_mailbox = messages // mailboxes
        now = datetime.now(UTC)
        for m in range(mailboxes):
            mailbox = await runtime.mailboxes.create_mailbox(
                user.user_id,
                email=f"bench{m}@acme.com",
                provider="smtp",
                smtp_host="127.0.0.1",
                smtp_port=port,
                smtp_security="plain",
                password="pw",
                daily_limit=10_000,
            )
            campaign = await runtime.campaigns.create_campaign(
                user.user_id,
                mailbox_id=mailbox.mailbox_id,
                campaign_name=f"Bench {m}",
                subject="Hello {{first_name}}",
                message=BODY,
                duration=24,
                start_time=now - timedelta(minutes=1),
            )
            rows = "".join(f"m{m}r{n}@example.com,R{n}\n" for n in range(per_mailbox))
            await runtime.sending.import_recipients(
                user.user_id, campaign.campaign_id, io.BytesIO(f"email,first_name\n{rows}".encode())
            )
            campaigns.append(campaign.campaign_id)
        await make_due_now(runtime)

        async def total_sent() -> int:
            total = 0
            for campaign_id in campaigns:
                total += (await runtime.metrics.get_campaign_metrics(campaign_id)).total_sent
            return total

        started = time.perf_counter()
        if processes:
            environment = {
                **{k: v for k, v in os.environ.items() if not k.startswith("MAILRAMP_")},
                "MAILRAMP_DATABASE_URL": database_url,
                "MAILRAMP_ENCRYPTION_KEYS": key,
                "MAILRAMP_ALLOW_PRIVATE_HOSTS": "true",
                "MAILRAMP_WORKER_POLL_SECONDS": "0.05",
                "MAILRAMP_LOG_LEVEL": "WARNING",
                **{f"MAILRAMP_{k.upper()}": str(v) for k, v in WORKER_SETTINGS.items()},
            }
            workers = [
                subprocess.Popen(  # noqa: ASYNC220 - started once, before timing matters
                    [sys.executable, "-m", "mailramp", "worker"], env=environment
                )
                for _ in range(processes)
            ]
            try:
                # Polling another process's progress; there is no event to wait on.
                while await total_sent() < per_mailbox * mailboxes:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                elapsed = time.perf_counter() - started
            finally:
                for process in workers:
                    process.terminate()
                    process.wait()
        else:
            beside = asyncio.create_task(hooks.during(runtime)) if hooks else None
            worker = runtime.worker()
            while await worker.tick():
                pass
            elapsed = time.perf_counter() - started
            await worker.close()
            if beside is not None:
                beside.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beside
        sent = await total_sent()
        assert sent == per_mailbox * mailboxes, f"only {sent} recorded as sent"
        return sent / elapsed
    finally:
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--mailboxes", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--processes",
        default="0,2",
        help="worker set-ups to measure on PostgreSQL: 0 = one worker in this process, "
        "N = N `mailramp worker` processes",
    )
    arguments = parser.parse_args()
    messages, mailboxes = arguments.messages, arguments.mailboxes

    sink = Sink()
    expected = 0
    postgres = None
    try:
        ceiling = asyncio.run(bare_aiosmtplib(sink.port, messages, mailboxes))
        expected += messages
        scripted = plain_smtplib(sink.port, messages)
        expected += messages
        print(f"bare aiosmtplib, {mailboxes} connections (ceiling): {ceiling:8.0f} msg/s")
        print(f"plain smtplib loop, 1 connection:            {scripted:8.0f} msg/s")
        setups = [("sqlite", 0)] if "sqlite" in arguments.backends else []
        if "postgresql" in arguments.backends:
            setups += [("postgresql", int(n)) for n in arguments.processes.split(",")]
        for number, (backend, processes) in enumerate(setups):
            with tempfile.TemporaryDirectory() as directory:
                if backend == "sqlite":
                    url = f"sqlite:///{directory}/bench.db"
                else:
                    postgres = postgres or PostgresServer.start()
                    url = postgres.url(f"bench{number}")
                    subprocess.run(
                        [
                            str(postgres.bindir / "createdb"),
                            "-h",
                            "127.0.0.1",
                            "-p",
                            str(postgres.port),
                            "-U",
                            "postgres",
                            f"bench{number}",
                        ],
                        check=True,
                    )
                rate = asyncio.run(mailramp_engine(url, sink.port, messages, mailboxes, processes))
                expected += messages
            how = f"{processes} worker processes" if processes else "1 worker in-process"
            print(
                f"mailramp on {backend:10s} {how:22s} ({mailboxes} mailboxes): {rate:6.0f} msg/s"
                f"  = {rate / ceiling:.2f} x ceiling, {rate / scripted:.2f} x plain smtplib"
            )
    finally:
        received = sink.stop()
        if postgres is not None:
            postgres.stop()
    print(f"sink received {received} of {expected} messages")
    assert received == expected


if __name__ == "__main__":
    main()
