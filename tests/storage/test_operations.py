"""What operators' tools (health checks, metrics) ask of every backend: does the database
answer, and what is due and sending in the send queue."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from mailramp.campaigns.models import Campaign
from mailramp.kit.ids import new_object_id
from mailramp.sending.models import QueueDepth
from mailramp.sending.repository import Lease
from mailramp.storage.sql import SqlStore
from mailramp.tracking.models import EmailTracking
from tests.conftest import Services, make_campaign, make_mailbox, make_user
from tests.support.clock import MONDAY_MORNING

NOW = MONDAY_MORNING  # where the services' clock stands (tests/conftest.py)


async def test_ping_answers_and_a_database_that_is_not_there_raises(
    services: Services, tmp_path: Path
) -> None:
    await services.store.ping()
    if services.store.backend != "sqlite":
        return  # the unreachable database below is an SQLite one: checked once
    missing = SqlStore.from_url(f"sqlite:///{tmp_path}")  # a directory: it cannot open
    try:
        with pytest.raises(DBAPIError):
            await missing.ping()
        assert await missing.schema_version() is None  # why health checks ping first
    finally:
        await missing.close()


def _records(campaign: Campaign, count: int, *, due_in_minutes: int) -> list[EmailTracking]:
    return [
        EmailTracking(
            id=new_object_id(),
            campaign_id=campaign.campaign_id,
            user_id=campaign.user_id,
            mailbox_id=campaign.mailbox_id,
            recipient_email=f"d{due_in_minutes}-{n}@example.com",
            scheduled_at=NOW + timedelta(minutes=due_in_minutes),
            created_at=NOW,
            updated_at=NOW,
        )
        for n in range(count)
    ]


async def _active_campaign(services: Services) -> Campaign:
    user = await make_user(services)
    mailbox = await make_mailbox(services, user)
    return await make_campaign(
        services, user, mailbox, start_time=NOW - timedelta(hours=1), duration=5
    )


async def test_queue_depth_counts_due_unclaimed_and_sending_records_of_every_user(
    services: Services,
) -> None:
    store = services.store
    assert await store.queue_depth(now=NOW) == QueueDepth(due=0, sending=0)

    first, second = await _active_campaign(services), await _active_campaign(services)
    await store.insert_tracking(_records(first, 4, due_in_minutes=-10))
    await store.insert_tracking(_records(first, 3, due_in_minutes=+10))  # not due yet
    await store.insert_tracking(_records(second, 2, due_in_minutes=-5))
    # Still `scheduled`, but their start has come: the next worker pass starts and sends
    # them, so they are due even while no worker runs.
    assert await store.queue_depth(now=NOW) == QueueDepth(due=6, sending=0)
    await store.run_lifecycle(now=NOW)
    assert await store.queue_depth(now=NOW) == QueueDepth(due=6, sending=0)

    lease = NOW + timedelta(minutes=2)
    claimed = await store.claim_due(Lease("w", NOW, lease), limit=3)
    assert await store.queue_depth(now=NOW) == QueueDepth(due=3, sending=0)
    await store.start_sending(
        Lease("w", NOW, lease), {record.id: f"<{record.id}@x>" for record in claimed[:2]}
    )
    assert await store.queue_depth(now=NOW) == QueueDepth(due=3, sending=2)

    # A paused campaign's records wait, but no worker may claim them: not due.
    await services.campaigns.pause(second.user_id, second.campaign_id)
    assert await store.queue_depth(now=NOW) == QueueDepth(due=1, sending=2)
    # Ten minutes on, the later records are due and the unused lease has run out.
    later = NOW + timedelta(minutes=10)
    assert await store.queue_depth(now=later) == QueueDepth(due=1 + 3 + 1, sending=2)
    # Past the campaign's end what is unsent expires instead of going out.
    assert await store.queue_depth(now=NOW + timedelta(hours=5)) == QueueDepth(due=0, sending=2)


def test_libpq_sslmode_in_a_postgresql_url_becomes_asyncpgs_ssl() -> None:
    from mailramp.storage.sql.engine import async_url

    url = async_url("postgresql://u:p@db.example.com/mailramp?sslmode=require")
    assert url.drivername == "postgresql+asyncpg"
    assert dict(url.query) == {"ssl": "require"}
    kept = async_url("postgresql://u@db/mailramp?ssl=verify-full&application_name=x")
    assert dict(kept.query) == {"ssl": "verify-full", "application_name": "x"}
