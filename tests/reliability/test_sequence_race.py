"""Replies racing follow-ups on PostgreSQL: while four workers claim and start the second
step of 300 people (`claim_due` — `FOR UPDATE SKIP LOCKED` — then `start_sending`, each on
its own connection pool), the inbox records replies from half of them. A reply's stop and
a worker's start each change the email's status in one transaction, guarded by the status
the other one leaves, so each follow-up ends exactly one way: stopped (the reply came
first), or started by exactly one worker (the claim came first) — never both, never twice.
"""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from mailramp.kit.secrets import generate_key
from mailramp.sending.repository import Lease
from mailramp.storage.sql import SqlStore
from mailramp.tracking.events import REPLY
from mailramp.tracking.models import EmailEvent
from mailramp.tracking.repository import EventChange
from tests.conftest import PostgresTarget, new_postgres_database
from tests.scale.scenario import Target
from tests.support.loops import run_blocking
from tests.support.scenario import smtp_sender

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

PEOPLE = 300
WORKERS = 4


async def _campaign(target: Target) -> tuple[str, str]:
    """300 people whose first email was sent and whose second is due now."""
    runtime = await target.runtime()
    try:
        user, mailbox = await smtp_sender(
            runtime, email="race@acme.com", smtp_port=25, daily_limit=10_000
        )
        now = datetime.now(UTC)
        campaign = await runtime.campaigns.create_campaign(
            user.user_id,
            mailbox_id=mailbox.mailbox_id,
            campaign_name="Race",
            subject="Hello",
            message="Hi",
            duration=24 * 7,
            start_time=now - timedelta(minutes=1),
            campaign_steps=[{"delay_days": 1, "message": "Any news?"}],
        )
        rows = "email\n" + "".join(f"p{n}@example.com\n" for n in range(PEOPLE))
        await runtime.sending.import_recipients(
            user.user_id, campaign.campaign_id, io.BytesIO(rows.encode())
        )
        async with runtime.store.engine.begin() as connection:  # type: ignore[attr-defined]
            await connection.execute(
                text(
                    "UPDATE email_tracking SET status = 'sent', sent_at = :t, "
                    "message_id = '<' || _id || '@race>' WHERE campaign_id = :c AND step = 1"
                ),
                {"t": now - timedelta(days=1), "c": campaign.campaign_id},
            )
            await connection.execute(
                text(
                    "UPDATE email_tracking SET status = 'pending', scheduled_at = :t "
                    "WHERE campaign_id = :c AND step = 2"
                ),
                {"t": now - timedelta(seconds=1), "c": campaign.campaign_id},
            )
            await connection.execute(
                text("UPDATE campaign_creation_table SET status = 'active' WHERE campaign_id = :c"),
                {"c": campaign.campaign_id},
            )
        return user.user_id, campaign.campaign_id
    finally:
        await runtime.close()


async def _worker(url: str, name: str) -> list[str]:
    """Claim and start follow-ups until none is left; the ids this worker started."""
    store = SqlStore.from_url(url, pool_size=2, max_overflow=0)
    started: list[str] = []
    try:
        while True:
            now = datetime.now(UTC)
            lease = Lease(name, now, now + timedelta(minutes=5))
            claimed = await store.claim_due(lease, limit=3)
            if not claimed:
                return started
            await asyncio.sleep(0.002)  # a reply may come between the claim and the start
            allowed = await store.start_sending(lease, {r.id: f"<{r.id}@w>" for r in claimed})
            started += sorted(allowed)
            await store.release_claims(worker_id=name)
            await asyncio.sleep(0.01)  # the sending itself
    finally:
        await store.close()


async def _replies(url: str, user_id: str, campaign_id: str) -> list[str]:
    """The inbox records a reply to the first email of every other person."""
    store = SqlStore.from_url(url, pool_size=2, max_overflow=0)
    replied = []
    try:
        for n in range(0, PEOPLE, 2):
            email = f"p{n}@example.com"
            first = (await store.sequence_emails(campaign_id, email))[0]
            event = EmailEvent.about(first, REPLY.type, datetime.now(UTC), details={})
            change = EventChange(firsts=REPLY.firsts_for(human=False), stops_sequence=True)
            await store.record_event(event, change)
            replied.append(email)
            await asyncio.sleep(0)
        return replied
    finally:
        await store.close()


async def _race(url: str, user_id: str, campaign_id: str) -> tuple[list[list[str]], list[str]]:
    results = await asyncio.gather(
        *(_worker(url, f"worker-{n}") for n in range(WORKERS)),
        _replies(url, user_id, campaign_id),
    )
    return list(results[:WORKERS]), results[WORKERS]


def test_a_reply_recorded_while_workers_claim_follow_ups(postgres: PostgresTarget) -> None:
    target = Target(url=run_blocking(new_postgres_database(postgres)), key=generate_key())
    user_id, campaign_id = run_blocking(_campaign(target))
    started_by, replied = run_blocking(_race(target.url, user_id, campaign_id))

    async def follow_ups() -> dict[str, tuple[str, str]]:
        store = SqlStore.from_url(target.url)
        try:
            emails = await store.step_emails(campaign_id, 2)
            return {e.id: (e.recipient_email, e.status.value) for e in emails}
        finally:
            await store.close()

    final = run_blocking(follow_ups())
    started = Counter(record for ids in started_by for record in ids)
    assert set(started.values()) <= {1}  # no follow-up started twice
    assert all(final[record][1] == "sending" for record in started)  # never stopped after
    stopped = {record for record, (_, status) in final.items() if status == "stopped"}
    assert not stopped & set(started)
    # Everyone who did not reply had their follow-up started; each who did, one way or
    # the other; nothing is left pending.
    assert Counter(status for _, status in final.values()) == {
        "sending": len(started),
        "stopped": len(stopped),
    }
    assert {final[r][0] for r in stopped} <= set(replied)
    assert len(started) + len(stopped) == PEOPLE
    assert stopped and len(started) >= PEOPLE // 2  # the two really raced
    print(f"\nrace: {len(stopped)} stopped before their claim, {len(started)} started")
