"""Tracking throughput and metrics latency.

1. Pixel and click requests per second over HTTP (uvicorn on loopback, one server process),
   every event persisted, as a ratio to a bare endpoint (a constant GIF) on the same server,
   measured in the same run with the same client; with the write statements the server ran
   per request — a person-looking request (stored `settling`, decided later) against one
   decided at once (Apple's proxy), so settling's cost on the hot path shows — and then
   the settling pass that decides the person-looking ones (events per second).
2. `get_campaign_metrics` latency with 1,000 and with 1,000,000 tracking records: it reads
   one `campaign_matrix` row by its unique `campaign_id`, so it must stay flat.

    .venv/bin/python -m bench.tracking [--requests 3000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text
from tests.support.postgres import PostgresServer, free_port
from tests.support.scenario import bench_campaign

from mailramp.config import Settings
from mailramp.kit.secrets import generate_key
from mailramp.kit.signing import Purpose
from mailramp.runtime import Runtime, open_runtime

CONCURRENCY = 16
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5"
APPLE_PROXY = "Mozilla/5.0"  # Apple Mail Privacy Protection: a machine, decided at once


async def _campaign(runtime: Runtime) -> tuple[str, str, str]:
    user, mailbox, campaign = await bench_campaign(
        runtime,
        campaign_name="Tracking bench",
        message='<a href="https://acme.com/x">x</a>',
        message_format="html",
        start_time=datetime.now(UTC) - timedelta(hours=1),
    )
    return user.user_id, mailbox.mailbox_id, campaign.campaign_id


async def _add_records(runtime: Runtime, ids: tuple[str, str, str], start: int, count: int) -> None:
    """`count` sent records, made in the database itself (fast enough for a million), and
    counted."""
    user_id, mailbox_id, campaign_id = ids
    sent = datetime.now(UTC) - timedelta(minutes=30)
    backend = runtime.store.backend
    if backend == "postgresql":
        statement = text(
            "INSERT INTO email_tracking (_id, campaign_id, user_id, mailbox_id, recipient_email,"
            " merge_variables, status, attempts, sent_at, created_at, updated_at) "
            "SELECT lpad(to_hex(i), 24, '0'), :c, :u, :m, 'r' || i || '@example.com', '{}',"
            " 'sent', 1, :t, :t, :t"
            " FROM generate_series(CAST(:a AS integer), CAST(:b AS integer)) AS i"
        )
        params = {"t": sent}
    else:
        statement = text(
            "WITH RECURSIVE n(i) AS (SELECT :a UNION ALL SELECT i + 1 FROM n WHERE i < :b) "
            "INSERT INTO email_tracking (_id, campaign_id, user_id, mailbox_id, recipient_email,"
            " merge_variables, status, attempts, sent_at, created_at, updated_at) "
            "SELECT printf('%024x', i), :c, :u, :m, 'r' || i || '@example.com', '{}', 'sent', 1,"
            " :t, :t, :t FROM n"
        )
        params = {"t": sent.replace(tzinfo=None)}
    async with runtime.store.engine.begin() as connection:  # type: ignore[attr-defined]
        await connection.execute(
            statement,
            {"a": start, "b": start + count - 1, "c": campaign_id, "u": user_id, "m": mailbox_id}
            | params,
        )
    # Made behind the queue's back, they have no `sent` events to recount: counted here.
    await runtime.store.increment_metrics(campaign_id, {"total_sent": count}, at=datetime.now(UTC))


async def _load(urls: list[str], *, follow: bool = False, agent: str = BROWSER) -> float:
    queue = list(urls)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, headers={"User-Agent": agent}) as client:

        async def drain() -> None:
            while queue:
                response = await client.get(queue.pop(), follow_redirects=follow)
                assert response.status_code in (200, 302), response.status_code

        started = time.perf_counter()
        await asyncio.gather(*(drain() for _ in range(CONCURRENCY)))
        return len(urls) / (time.perf_counter() - started)


async def http_throughput(database_url: str, requests: int) -> dict[str, float]:
    key = generate_key()
    settings = Settings(database_url=database_url, encryption_keys=key)
    runtime = await open_runtime(settings)
    try:
        ids = await _campaign(runtime)
        await _add_records(runtime, ids, 1, 2000)
        port = free_port()
        server = subprocess.Popen(  # noqa: ASYNC220 - started once, before timing
            [sys.executable, "-m", "bench.tracking_server", database_url, str(port), key]
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    async with httpx.AsyncClient() as client:
                        await client.get(f"{base}/bench/bare")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            signer = runtime.tracking._signer
            records = [f"{i:024x}" for i in range(1, 2001)]
            pick = random.Random(7)
            bare = [f"{base}/bench/bare"] * requests
            # Person-looking and Apple's opens on two halves of the records alike, so both
            # meet the same share of first opens (which write more).
            people, proxied = records[:1000], records[1000:]
            opens = [
                f"{base}/t/o/{signer.sign(Purpose.OPEN, pick.choice(people))}"
                for _ in range(requests)
            ]
            clicks = [
                f"{base}/t/c/{signer.sign(Purpose.CLICK, pick.choice(records), 0)}"
                for _ in range(requests)
            ]
            apple = [
                f"{base}/t/o/{signer.sign(Purpose.OPEN, pick.choice(proxied))}"
                for _ in range(requests)
            ]
            await _load(bare[:200])  # warm up

            async def written() -> int:
                async with httpx.AsyncClient() as client:
                    return int((await client.get(f"{base}/bench/writes")).json()["statements"])

            result = {"bare": await _load(bare)}
            for name, urls, agent in (
                ("pixel", opens, BROWSER),
                ("pixel, decided at once", apple, APPLE_PROXY),
                ("click", clicks, BROWSER),
            ):
                before = await written()
                result[name] = await _load(urls, agent=agent)
                result[f"{name}: writes"] = (await written() - before) / len(urls)
            async with runtime.store.engine.connect() as connection:  # type: ignore[attr-defined]
                logged = (
                    await connection.execute(text("SELECT count(*) FROM email_events"))
                ).scalar_one()
            assert logged == 3 * requests, f"{logged} events for {3 * requests} requests"
            # The worker's settling pass, its clock past the window: every person-looking
            # open and click decided, the human counters moved in the verdicts' transactions.
            ahead = await open_runtime(
                settings, clock=lambda: datetime.now(UTC) + timedelta(minutes=1)
            )
            try:
                started, decided = time.perf_counter(), 0
                while made := await ahead.tracking.settle():
                    decided += made
                result["settled"] = decided / (time.perf_counter() - started)
                result["settled: events"] = decided
            finally:
                await ahead.close()
            return result
        finally:
            server.terminate()
            server.wait()
    finally:
        await runtime.close()


async def metrics_latency(database_url: str) -> tuple[float, float]:
    runtime = await open_runtime(
        Settings(database_url=database_url, encryption_keys=generate_key())
    )
    try:
        ids = await _campaign(runtime)

        async def mean_ms() -> float:
            samples = []
            for _ in range(300):
                started = time.perf_counter()
                metrics = await runtime.metrics.get_campaign_metrics(ids[2], user_id=ids[0])
                samples.append(time.perf_counter() - started)
            assert metrics.total_sent > 0
            return statistics.median(samples) * 1000

        await _add_records(runtime, ids, 1, 1000)
        small = await mean_ms()
        await _add_records(runtime, ids, 1001, 999_000)
        large = await mean_ms()
        return small, large
    finally:
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    arguments = parser.parse_args()
    postgres = None
    try:
        for backend in arguments.backends.split(","):
            with tempfile.TemporaryDirectory() as directory:

                def url(name: str, backend: str = backend) -> str:
                    nonlocal postgres
                    if backend == "sqlite":
                        return f"sqlite:///{directory}/{name}.db"
                    postgres = postgres or PostgresServer.start()
                    subprocess.run(
                        [
                            str(postgres.bindir / "createdb"),
                            "-h",
                            "127.0.0.1",
                            "-p",
                            str(postgres.port),
                            "-U",
                            "postgres",
                            name,
                        ],
                        check=True,
                    )
                    return postgres.url(name)

                rates = asyncio.run(http_throughput(url("http"), arguments.requests))
                print(f"{backend}: bare endpoint {rates['bare']:7.0f} req/s")
                for kind in ("pixel", "pixel, decided at once", "click"):
                    print(
                        f"{backend}: {kind} + event {rates[kind]:7.0f} req/s "
                        f"= {rates[kind] / rates['bare']:.2f} x bare; "
                        f"{rates[kind + ': writes']:.2f} write statements per request"
                    )
                print(
                    f"{backend}: settling {rates['settled: events']:.0f} person-looking "
                    f"events: {rates['settled']:.0f} events/s"
                )
                small, large = asyncio.run(metrics_latency(url("metrics")))
                print(
                    f"{backend}: get_campaign_metrics median {small:.3f} ms at 1,000 records, "
                    f"{large:.3f} ms at 1,000,000 = {large / small:.2f} x"
                )
    finally:
        if postgres is not None:
            postgres.stop()


if __name__ == "__main__":
    main()
