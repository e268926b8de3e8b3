"""Workers recording outcomes at once must not deadlock on PostgreSQL.

`record_results` locks rows other workers' batches may lock too: one `campaign_matrix` row
per campaign of the batch, and one suppression-list entry per bounced address. Taken in
the batch's order, two workers whose batches hold campaigns X and Y (or addresses one and
two) in opposite orders each hold one and wait for the other's: PostgreSQL aborts one
transaction, its messages have left but their outcomes are lost, and the records end
`uncertain` when the lease runs out. Every transaction therefore takes them in one order.

The interleaving is forced, not hoped for: a third transaction holds the first row while
worker A queues on it, then worker B (in the batch's order) takes the second and queues too.
"""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import text

from mailramp.campaigns.models import Campaign
from mailramp.kit.ids import new_object_id
from mailramp.kit.secrets import SecretBox, generate_key
from mailramp.sending.models import Outcome, SendResult
from mailramp.storage.sql import SqlStore
from mailramp.tracking.models import EmailTracking, TrackingStatus
from tests.conftest import (
    PostgresTarget,
    Services,
    make_campaign,
    make_mailbox,
    make_user,
    new_postgres_database,
    services_on,
)
from tests.support.clock import MONDAY_MORNING, FakeClock

NOW = MONDAY_MORNING


async def _sending_records(services: Services, campaign: Campaign, names: list[str]) -> list[str]:
    records = [
        EmailTracking(
            id=new_object_id(),
            campaign_id=campaign.campaign_id,
            user_id=campaign.user_id,
            mailbox_id=campaign.mailbox_id,
            recipient_email=f"{name}@example.com",
            status=TrackingStatus.SENDING,
            scheduled_at=NOW,
            created_at=NOW,
            updated_at=NOW,
        )
        for name in names
    ]
    await services.store.insert_tracking(records)
    return [record.id for record in records]


def _bounce(campaign: Campaign, record_id: str, name: str) -> SendResult:
    return SendResult(
        record_id=record_id,
        campaign_id=campaign.campaign_id,
        user_id=campaign.user_id,
        recipient_email=f"{name}@example.com",
        outcome=Outcome.BOUNCED,
        error="550 no such user",
    )


class _World:
    """A PostgreSQL store with a user, a mailbox and two campaigns (in campaign_id order),
    and two more connections: one to hold a lock, one to watch who waits."""

    def __init__(self, url: str) -> None:
        self.database = url.rsplit("/", 1)[1]
        self.dsn = url.replace("postgresql://", "postgres://")
        self.store = SqlStore.from_url(url)
        self.services = services_on(self.store, SecretBox([generate_key()]), FakeClock(NOW))

    async def __aenter__(self) -> _World:
        self.admin = await asyncpg.connect(self.dsn)
        self.holder = await asyncpg.connect(self.dsn)
        user = await make_user(self.services)
        mailbox = await make_mailbox(self.services, user)
        made = [await make_campaign(self.services, user, mailbox) for _ in range(2)]
        self.first, self.second = sorted(made, key=lambda campaign: campaign.campaign_id)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.holder.close()
        await self.admin.close()
        await self.store.close()

    async def until_waiting(self, count: int) -> None:
        for _ in range(500):
            waiting = await self.admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = $1 AND wait_event_type = 'Lock'",
                self.database,
            )
            if waiting >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"never saw {count} transactions waiting on a lock")

    async def race(self, lock: str, batch_a: list[SendResult], batch_b: list[SendResult]) -> None:
        """`lock` runs in a transaction of its own; A queues behind it, then B; then the
        transaction ends (rolled back) and both must finish."""
        transaction = self.holder.transaction()
        await transaction.start()
        try:
            await self.holder.execute(lock)
            worker_a = asyncio.create_task(self.store.record_results(batch_a, now=NOW))
            await self.until_waiting(1)
            worker_b = asyncio.create_task(self.store.record_results(batch_b, now=NOW))
            await self.until_waiting(2)
        finally:
            await transaction.rollback()
        outcomes = await asyncio.gather(worker_a, worker_b, return_exceptions=True)
        assert outcomes == [None, None]
        async with self.store.engine.connect() as connection:
            statuses = await connection.execute(
                text("SELECT status, count(*) FROM email_tracking GROUP BY status")
            )
            assert {row[0]: row[1] for row in statuses} == {"bounced": len(batch_a) + len(batch_b)}


async def test_outcomes_of_several_campaigns_lock_their_metrics_rows_in_one_order(
    postgres: PostgresTarget,
) -> None:
    async with _World(await new_postgres_database(postgres)) as world:
        first, second = world.first, world.second
        a_first, b_first = await _sending_records(world.services, first, ["a1", "b1"])
        a_second, b_second = await _sending_records(world.services, second, ["a2", "b2"])
        # Worker A's batch names the first campaign first, worker B's the second first.
        await world.race(
            f"SELECT 1 FROM campaign_matrix WHERE campaign_id = '{first.campaign_id}' FOR UPDATE",
            [_bounce(first, a_first, "a1"), _bounce(second, a_second, "a2")],
            [_bounce(second, b_second, "b2"), _bounce(first, b_first, "b1")],
        )
        for campaign in (first, second):
            metrics = await world.services.metrics.get_campaign_metrics(campaign.campaign_id)
            assert (metrics.total_sent, metrics.total_bounced) == (2, 2)


async def test_bounces_of_one_address_in_two_campaigns_suppress_in_one_order(
    postgres: PostgresTarget,
) -> None:
    async with _World(await new_postgres_database(postgres)) as world:
        first, second = world.first, world.second
        # The same two addresses bounce in both campaigns; each worker's batch has them in
        # another order. Each bounce adds the address to the owner's suppression list.
        one_first, two_first = await _sending_records(world.services, first, ["one", "two"])
        one_second, two_second = await _sending_records(world.services, second, ["one", "two"])
        await world.race(
            # A stops after suppressing `one`, before its record for `two`.
            f"SELECT 1 FROM email_tracking WHERE _id = '{two_first}' FOR UPDATE",
            [_bounce(first, one_first, "one"), _bounce(first, two_first, "two")],
            [_bounce(second, two_second, "two"), _bounce(second, one_second, "one")],
        )
        suppressed = await world.store.suppressed_among(
            first.user_id, {"one@example.com", "two@example.com"}
        )
        assert suppressed == {"one@example.com", "two@example.com"}
