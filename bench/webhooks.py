"""Outgoing webhooks: 10,000 events fanned out to 3 endpoints, and what delivering them
costs sending.

1. Deliveries per second: a recipient import logs 10,000 `queued` events; the dispatcher
   queues them for 3 endpoints and delivers the 30,000 signed POSTs (each attempt logged,
   in its own transaction). Baseline in the same run: a bare httpx loop POSTing the same
   bodies to the same receivers with the same concurrency, nothing stored — the ceiling.
2. The cost to sending: bench.send's engine (10,000 emails into an SMTP sink), alone and
   with 3 endpoints' dispatcher running beside the worker in the same process, as
   `mailramp serve` runs them (every email logs `queued` and `sent`: 60,000 deliveries).

The receivers are uvicorn in their own processes (bench/webhook_sink.py).

    .venv/bin/python -m bench.webhooks [--events N] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from tests.support.postgres import PostgresServer, free_port

from bench.send import WORKER_SETTINGS, Sink, mailramp_engine
from mailramp.config import Settings
from mailramp.kit.secrets import generate_key
from mailramp.runtime import (
    WEBHOOK_INTERVAL_SECONDS,
    WEBHOOK_SLICE_SECONDS,
    Runtime,
    open_runtime,
)
from mailramp.webhooks.models import MessageStatus

ROOT = Path(__file__).resolve().parents[1]
ENDPOINTS = 3


class Receiver:
    """One receiver process; `stop()` returns how many POSTs it answered."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "webhook_sink.py"), str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def stop(self) -> int:
        self.process.terminate()
        out, _ = self.process.communicate(timeout=30)
        return int(out.strip().splitlines()[-1])


async def bare_httpx(urls: list[str], body: bytes, count: int, concurrency: int) -> float:
    """POSTs per second with no bookkeeping: the ceiling."""
    async with httpx.AsyncClient() as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(n: int) -> None:
            async with gate:
                response = await client.post(urls[n % len(urls)], content=body)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(count)))
        return count / (time.perf_counter() - started)


async def _campaign(runtime: Runtime, user_id: str, people: int) -> str:
    mailbox = await runtime.mailboxes.create_mailbox(
        user_id,
        email="hooks@acme.com",
        provider="smtp",
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        smtp_security="plain",
        password="pw",
        daily_limit=10_000,
        already_warm=True,
    )
    campaign = await runtime.campaigns.create_campaign(
        user_id,
        mailbox_id=mailbox.mailbox_id,
        campaign_name="Hooks",
        subject="Hello",
        message="Hello",
        duration=24 * 14,
        start_time=datetime.now(UTC) - timedelta(minutes=1),
    )
    rows = "".join(f"r{n}@example.com\n" for n in range(people))
    await runtime.sending.import_recipients(
        user_id, campaign.campaign_id, io.BytesIO(f"email\n{rows}".encode())
    )
    return campaign.campaign_id


async def fan_out(database_url: str, urls: list[str], events: int) -> tuple[float, int, int]:
    """Deliveries per second of `events` events to every URL; the payload's size; how many
    the store says were delivered."""
    settings = Settings(
        database_url=database_url,
        encryption_keys=generate_key(),
        allow_private_hosts=True,
        **WORKER_SETTINGS,  # type: ignore[arg-type]
    )
    runtime = await open_runtime(settings)
    try:
        user = await runtime.accounts.create_user(user_name="Bench", login_id="bench")
        endpoints = [(await runtime.webhooks.add_endpoint(user.user_id, url))[0] for url in urls]
        await _campaign(runtime, user.user_id, events)
        dispatcher = runtime.webhook_dispatcher
        started = time.perf_counter()
        while await dispatcher.run_once(seconds=3600):
            pass
        elapsed = time.perf_counter() - started
        delivered = 0
        size = 0
        for endpoint in endpoints:
            page = await runtime.webhooks.messages(
                user.user_id, endpoint.id, status=MessageStatus.DELIVERED, limit=1
            )
            delivered += page.total
            size = len(page.items[0].payload)
        return delivered / elapsed, size, delivered
    finally:
        await runtime.close()


class Dispatching:
    """bench.send's hooks: 3 endpoints made before the import, their dispatcher running
    beside the worker as a worker's upkeep runs it (a slice of work, a rest)."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls

    async def prepare(self, runtime: Runtime, user_id: str) -> None:
        for url in self.urls:
            await runtime.webhooks.add_endpoint(user_id, url)

    async def during(self, runtime: Runtime) -> None:
        while True:
            await runtime.webhook_dispatcher.run_once(seconds=WEBHOOK_SLICE_SECONDS)
            await asyncio.sleep(WEBHOOK_INTERVAL_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    arguments = parser.parse_args()
    receivers = [Receiver() for _ in range(ENDPOINTS)]
    urls = [receiver.url for receiver in receivers]
    sink = Sink()
    postgres = PostgresServer.start() if arguments.backend == "postgresql" else None
    expected_posts = 0
    number = iter(range(100))

    def database(directory: str) -> str:
        if postgres is None:
            return f"sqlite:///{directory}/bench.db"
        name = f"hooks{next(number)}"
        subprocess.run(
            [str(postgres.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(postgres.port),
             "-U", "postgres", name],
            check=True,
        )  # fmt: skip
        return postgres.url(name)

    try:
        with tempfile.TemporaryDirectory() as directory:
            rate, size, delivered = asyncio.run(
                fan_out(database(directory), urls, arguments.events)
            )
        expected_posts += delivered
        body = b"x" * size
        ceiling = asyncio.run(bare_httpx(urls, body, delivered, concurrency=ENDPOINTS * 4))
        expected_posts += delivered
        print(f"events: {arguments.events:,} to {ENDPOINTS} endpoints = {delivered:,} deliveries")
        print(
            f"bare httpx, {ENDPOINTS * 4} concurrent, nothing stored (ceiling): {ceiling:7.0f} /s"
        )
        print(
            f"mailramp dispatcher on {arguments.backend}, signed and logged:   {rate:6.0f}/s"
            f"  = {rate / ceiling:.2f} x ceiling"
        )
        runs = {}
        for label, hooks in (("without webhooks", None), ("with 3 endpoints", Dispatching(urls))):
            with tempfile.TemporaryDirectory() as directory:
                runs[label] = asyncio.run(
                    mailramp_engine(
                        database(directory), sink.port, arguments.messages, 10, hooks=hooks
                    )
                )
            print(f"sending {arguments.messages:,} emails {label}: {runs[label]:6.0f} msg/s")
        alone, beside = runs["without webhooks"], runs["with 3 endpoints"]
        print(f"sending with webhooks = {beside / alone:.2f} x sending without")
    finally:
        answered = sum(receiver.stop() for receiver in receivers)
        sink.stop()
        if postgres is not None:
            postgres.stop()
    print(
        f"receivers answered {answered:,} POSTs ({expected_posts:,} from parts 1 and its ceiling)"
    )
    assert answered >= expected_posts


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
