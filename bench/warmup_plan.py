"""Planning warm-up: 50 opted-in mailboxes over 30 days — each day the pool plans every
mailbox's openings from its history (its warm-up ramp, today's daily limit, the partners'
rotation, the business-hours times), the day's emails are marked as sent and landed, and
the history is rolled up — with 3 campaigns of 200 people planned on ramping mailboxes
first; on SQLite. Prints the seconds, the warm-up emails planned per second and the peak
Python memory, against a baseline measured in the same run: writing the same warm-up
emails straight into the table in one statement (no planning, no history).

    .venv/bin/python -m bench.warmup_plan [--mailboxes 50] [--days 30]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mailramp.deliverability.pool import WarmupPool
from mailramp.kit.marked_ids import WarmupMarker, new_key
from mailramp.kit.secrets import SecretBox, generate_key
from mailramp.kit.signing import TokenSigner
from mailramp.runtime import Services, build_services, migrate_store
from mailramp.storage.sql import SqlStore, tables

START = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # a Monday, before business hours
PEOPLE = 200
CAMPAIGNS = 3


class Clocked:
    """The bench's clock: moved by hand, day by day."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Unused:
    """Providers and inboxes: planning never calls them."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("planning only")


async def prepare(store: SqlStore, services: Services, mailboxes: int, days: int) -> None:
    """The pool's mailboxes (new, so their daily limits ramp) and 3 campaigns on them."""
    owners = []
    for n in range(mailboxes):
        user = await services.accounts.create_user(user_name=f"U{n}", login_id=f"u{n}@b.example")
        box = await services.mailboxes.create_mailbox(
            user.user_id,
            email=f"u{n}@d{n % 10}.b.example",
            provider="outlook",
            access_token="t",
            daily_limit=60,
            already_warm=False,
        )
        await store.update_mailbox(user.user_id, box.id, {"warmup_enabled": True})
        owners.append((user, box))
    for n in range(CAMPAIGNS):
        user, box = owners[n]
        campaign = await services.campaigns.create_campaign(
            user.user_id,
            mailbox_id=box.id,
            campaign_name=f"C{n}",
            subject="Hi",
            message="Hello",
            duration=24 * days,
            start_time=START + timedelta(hours=1),
        )
        people = "email\n" + "".join(f"p{n}-{k}@example.com\n" for k in range(PEOPLE))
        await services.sending.import_recipients(
            user.user_id, campaign.campaign_id, io.BytesIO(people.encode())
        )


async def plan_days(store: SqlStore, services: Services, clock: Clocked, days: int) -> int:
    pool = WarmupPool(
        store, services.mailboxes, Unused(), Unused(), WarmupMarker(new_key()), clock=clock
    )
    planned = 0
    emails = tables.warmup_emails
    for day in range(days):
        clock.now = START + timedelta(days=day)
        planned += await pool.plan()
        async with store.engine.begin() as connection:  # the day's emails left and landed
            await connection.execute(
                emails.update()
                .where(emails.c.status == "planned")
                .values(status="sent", sent_at=emails.c.planned_at, placement="inbox")
            )
        clock.now += timedelta(hours=12)
        await services.deliverability.roll_up()
    return planned


async def write_straight(store: SqlStore) -> tuple[int, float]:
    """The baseline: the same rows, deleted and written again in one INSERT."""
    emails = tables.warmup_emails
    async with store.engine.begin() as connection:
        rows = [dict(r) for r in (await connection.execute(emails.select())).mappings()]
        await connection.execute(emails.delete())
    started = time.perf_counter()
    async with store.engine.begin() as connection:
        await connection.execute(emails.insert(), rows)
    return len(rows), time.perf_counter() - started


async def run(
    directory: Path, mailboxes: int, days: int, *, traced: bool
) -> tuple[int, float, float, SqlStore]:
    """One run on a fresh database: warm-up emails planned, seconds, peak MiB (traced)."""
    store = SqlStore.from_url(f"sqlite:///{directory / f'bench-{traced}.db'}")
    await migrate_store(store)
    clock = Clocked(START)
    signer = TokenSigner([b"bench-tracking-key-32-bytes-long"])
    services = build_services(store, SecretBox([generate_key()]), signer, clock=clock)
    await prepare(store, services, mailboxes, days)
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    planned = await plan_days(store, services, clock, days)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if traced else 0.0
    if traced:
        tracemalloc.stop()
    return planned, seconds, peak, store


async def main_async(mailboxes: int, days: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        # Seconds from an untraced run; the peak memory from a second, traced one.
        planned, seconds, _, store = await run(Path(directory), mailboxes, days, traced=False)
        written, baseline = await write_straight(store)
        await store.close()
        _, _, peak, traced_store = await run(Path(directory), mailboxes, days, traced=True)
        await traced_store.close()
    print(
        f"warm-up planning: {mailboxes} mailboxes x {days} days, {CAMPAIGNS} campaigns of "
        f"{PEOPLE} people: {planned} warm-up emails planned in {seconds:.2f} s "
        f"({planned / seconds:.0f}/s), peak Python memory {peak:.1f} MiB"
    )
    print(
        f"baseline (the same {written} rows in one INSERT): {baseline:.3f} s "
        f"({written / baseline:.0f}/s); planning / baseline = {seconds / baseline:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mailboxes", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main_async(args.mailboxes, args.days))


if __name__ == "__main__":
    main()
