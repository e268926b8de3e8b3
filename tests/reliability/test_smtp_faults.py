"""Item 3 of the reliability battery: a campaign through the real worker to an SMTP server
on loopback that misbehaves — 421/451 at random, the connection dropped after the content
(1% of messages), stalls at the greeting, at RCPT and after the content — on SQLite and
PostgreSQL. Every record must end as the sending rules say, exchange by exchange:

- a 421 or 451 (at the greeting, RCPT or the end of DATA) or a stall before the content
  went over: nothing left, the record is retried later and then sent — or `failed` after
  MAILRAMP_SEND_MAX_ATTEMPTS attempts;
- the connection dropped, or the server silent, after the content went over: the server
  may have taken it, so the record is `uncertain` and never sent again by itself;
- no recipient gets two copies; a stall holds a send for the configured timeout (plus
  slack), never longer, and the worker goes on with the rest.

Also what delivery-status reports in the inbox then settle: a delayed report is not a
bounce; a failed one is; either proves an `uncertain` message left.

Reproduce: MAILRAMP_TEST_STRICT=1 .venv/bin/pytest -q -s -p no:cacheprovider
tests/reliability/test_smtp_faults.py (MAILRAMP_TEST_FAULT_SEED=N picks another plan).
"""

from __future__ import annotations

import io
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mailramp.config import Settings
from mailramp.runtime import Runtime, open_runtime
from mailramp.tracking.models import EmailTracking, TrackingStatus
from mailramp.tracking.repository import RecipientQuery
from tests.sending.conftest import START
from tests.support.clock import FakeClock
from tests.support.faulty_smtp import (
    STALLS,
    TRANSIENT,
    UNCERTAIN,
    Fault,
    FaultPlan,
    FaultySmtpServer,
)
from tests.support.scenario import make_due_now, smtp_sender

pytestmark = pytest.mark.reliability

SEED = int(os.environ.get("MAILRAMP_TEST_FAULT_SEED", "3464"))
RECIPIENTS = [f"r{n:03d}@example.com" for n in range(300)]
TIMEOUT = 1.5
"""MAILRAMP_SMTP_TIMEOUT_SECONDS for these tests: what a stall costs."""
SLACK = 3.0
"""How much longer than the timeout a stalled exchange may hold the client (a busy CI
machine, the close): the bound, not an expected duration."""
MAX_ATTEMPTS = 5
PASSWORD = "smtp-password"


def fault_plan(seed: int) -> FaultPlan:
    """1% dropped after DATA, stalls at each step, 8% of attempts answered 421/451, and
    two recipients refused with 451 every time."""
    chosen = random.Random(seed).sample(RECIPIENTS, 11)
    drops, data_stalls, rcpt_stalls, always = chosen[:3], chosen[3:5], chosen[5:7], chosen[7:9]
    first_attempt = (
        dict.fromkeys(drops, Fault.DROP_AFTER_DATA)
        | dict.fromkeys(data_stalls, Fault.STALL_AFTER_DATA)
        | dict.fromkeys(rcpt_stalls, Fault.RCPT_STALL)
    )
    return FaultPlan(
        seed=seed,
        rcpt_421=0.02,
        rcpt_451=0.03,
        data_421=0.01,
        data_451=0.02,
        first_attempt=first_attempt,
        # One message of each kind of loss the server took before going silent.
        kept=frozenset({drops[0], data_stalls[0]}),
        always=frozenset(always),
        greetings={2: Fault.GREETING_STALL, 4: Fault.GREETING_421},
    )


@pytest.fixture
def faulty_server() -> Iterator[FaultySmtpServer]:
    server = FaultySmtpServer(fault_plan(SEED), {"ann@acme.com": PASSWORD}).start()
    try:
        yield server
    finally:
        server.stop()


async def _runtime(database_url: str, directory: Path, clock: FakeClock) -> Runtime:
    settings = Settings(
        database_url=database_url,
        encryption_key_file=directory / "mailramp.key",
        allow_private_hosts=True,
        smtp_timeout_seconds=TIMEOUT,
        send_max_attempts=MAX_ATTEMPTS,
    )
    return await open_runtime(settings, clock=clock)


async def _campaign(runtime: Runtime, smtp_port: int, recipients: list[str]) -> tuple[Any, Any]:
    user, mailbox = await smtp_sender(
        runtime, email="ann@acme.com", smtp_port=smtp_port, password=PASSWORD, daily_limit=1000
    )
    campaign = await runtime.campaigns.create_campaign(
        user.user_id,
        mailbox_id=mailbox.mailbox_id,
        campaign_name="Faults",
        subject="Hello {{first_name|there}}",
        message="Hi {{first_name|there}},\n\nA note from Acme.\n",
        duration=24,
        start_time=runtime.clock(),
    )
    rows = "email\n" + "".join(f"{address}\n" for address in recipients)
    report = await runtime.sending.import_recipients(
        user.user_id, campaign.campaign_id, io.BytesIO(rows.encode())
    )
    assert report.accepted == len(recipients)
    await make_due_now(runtime, campaign.campaign_id)
    return user, campaign


async def _records(runtime: Runtime, user_id: str, campaign_id: str) -> dict[str, EmailTracking]:
    page = await runtime.store.list_tracking(user_id, RecipientQuery(campaign_id, limit=1000))
    return {record.recipient_email: record for record in page.items}


async def _drain(runtime: Runtime, clock: FakeClock, user_id: str, campaign_id: str) -> int:
    """Run the worker as a polling one would, the clock jumping to each next retry, until
    no record is left to send. Returns the passes made."""
    worker = runtime.worker()
    passes = 0
    try:
        while True:
            while await worker.tick():
                passes += 1
            waiting = await runtime.store.list_tracking(
                user_id, RecipientQuery(campaign_id, status=TrackingStatus.PENDING, limit=1000)
            )
            if not waiting.items:
                await worker.tick()  # the lifecycle pass that completes the campaign
                return passes
            due = min(r.scheduled_at for r in waiting.items if r.scheduled_at is not None)
            clock.now = max(clock.now, due) + timedelta(seconds=1)
    finally:
        await worker.close()


async def test_faulty_server_every_record_ends_as_the_rules_say(
    database_url: str, tmp_path: Path, faulty_server: FaultySmtpServer
) -> None:
    clock = FakeClock(START)
    runtime = await _runtime(database_url, tmp_path, clock)
    try:
        user, campaign = await _campaign(runtime, faulty_server.port, RECIPIENTS)
        started = time.monotonic()
        passes = await _drain(runtime, clock, user.id, campaign.campaign_id)
        seconds = time.monotonic() - started
        records = await _records(runtime, user.id, campaign.campaign_id)
        metrics = await runtime.metrics.get_campaign_metrics(campaign.campaign_id)
        final = await runtime.campaigns.get_campaign(user.user_id, campaign.campaign_id)
    finally:
        await runtime.close()

    log = faulty_server.log
    plan = faulty_server.plan
    faults = log.by_recipient()
    delivered = faulty_server.inbox.count_by_recipient()
    greeting_faults = log.of_kind(Fault.GREETING_STALL, Fault.GREETING_421)

    # Never two copies, whatever happened.
    assert max(delivered.values()) == 1, {r: n for r, n in delivered.items() if n > 1}

    expected: Counter[str] = Counter()
    for address in RECIPIENTS:
        record, seen = records[address], faults.get(address, [])
        reached_rcpt = log.attempts[address]
        last = seen[-1] if seen else None
        if last is not None and last.fault in UNCERTAIN:
            # The content went over and no answer came: maybe delivered, never resent.
            assert record.status == TrackingStatus.UNCERTAIN, (address, seen, record)
            assert reached_rcpt == len(seen), (address, seen)  # nothing after it
            assert all(f.fault in TRANSIENT for f in seen[:-1])
            assert record.sent_at is None and record.delivered_at is None
            assert "may have accepted" in (record.last_error or "")
            assert delivered.get(address, 0) == (1 if last.kept else 0)
            expected["uncertain"] += 1
        elif log.accepted[address]:
            # Every attempt before the last was refused for now; the last was taken.
            assert record.status == TrackingStatus.SENT, (address, seen, record)
            assert log.accepted[address] == 1 and delivered[address] == 1
            assert all(f.fault in TRANSIENT for f in seen), (address, seen)
            assert len(seen) == reached_rcpt - 1, (address, seen, reached_rcpt)
            assert record.attempts >= reached_rcpt  # a greeting fault may have used one
            assert record.sent_at is not None and record.delivered_at == record.sent_at
            expected["sent"] += 1
        else:
            # Refused for now on every attempt: given up after the last one.
            assert record.status == TrackingStatus.FAILED, (address, seen, record)
            assert record.attempts == MAX_ATTEMPTS
            assert len(seen) == reached_rcpt and all(f.fault in TRANSIENT for f in seen)
            assert f"gave up after {MAX_ATTEMPTS} attempts" in (record.last_error or "")
            assert address not in delivered and record.delivered_at is None
            expected["failed"] += 1
    for address in plan.always:
        assert records[address].status == TrackingStatus.FAILED
    # Attempts that never reached RCPT: one per greeting fault, plus the records of its
    # group the worker put back untried after the server did not answer (at most
    # in-flight - 1 per such fault).
    unanswered = len(greeting_faults) + len(log.of_kind(Fault.RCPT_STALL))
    untried = sum(r.attempts - log.attempts[a] for a, r in records.items())
    assert len(greeting_faults) <= untried <= len(greeting_faults) + 4 * unanswered

    # A stall holds the send for the timeout, not longer; then the worker went on.
    stalls = log.of_kind(*STALLS)
    assert len(stalls) == 5  # 2 at RCPT, 2 after DATA, 1 at the greeting
    for stall in stalls:
        assert stall.held_seconds is not None
        assert TIMEOUT - 0.1 <= stall.held_seconds <= TIMEOUT + SLACK, stall

    counts = Counter(record.status.value for record in records.values())
    assert counts == expected
    assert counts["uncertain"] == 5 and counts["failed"] >= 2
    assert (metrics.total_sent, metrics.total_bounced) == (counts["sent"], 0)
    assert metrics.total_delivered == counts["sent"]
    assert final.status == "completed"  # uncertain and failed are final

    injected = Counter(exchange.fault.value for exchange in log.faults)
    retried = sum(1 for r in records.values() if r.status == TrackingStatus.SENT and r.attempts > 1)
    print(
        f"\n[item 3 · {database_url.split(':')[0]}] seed {SEED}: {len(RECIPIENTS)} recipients, "
        f"{sum(log.attempts.values())} RCPTs over {log.connections} connections, "
        f"{len(log.faults)} faults injected {dict(sorted(injected.items()))}; "
        f"outcomes {dict(sorted(counts.items()))} ({retried} sent after a retry); "
        f"copies delivered {sum(delivered.values())} (max 1 per recipient); "
        f"{untried} attempts ended before RCPT; "
        f"stalls held {sorted(round(s.held_seconds or 0, 2) for s in stalls)} s "
        f"(timeout {TIMEOUT} s); {passes} worker passes in {seconds:.1f} s"
    )


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh migrated SQLite database: for behaviour of the worker, not of the database."""
    path = tmp_path / "mailramp.db"
    path.write_bytes(sqlite_template.read_bytes())
    return f"sqlite:///{path}"


@pytest.fixture
def dead_server() -> Iterator[FaultySmtpServer]:
    """Accepts every connection and never says a word."""
    plan = FaultPlan(greetings=dict.fromkeys(range(1, 1000), Fault.GREETING_STALL))
    server = FaultySmtpServer(plan, {"ann@acme.com": PASSWORD}).start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_dead_server_costs_one_timeout_per_pass_and_other_mailboxes_go_on(
    sqlite_url: str, tmp_path: Path, dead_server: FaultySmtpServer
) -> None:
    from tests.support.smtp import SmtpServer

    healthy = SmtpServer({"bob@beta.com": PASSWORD}).start()
    clock = FakeClock(START)
    runtime = await _runtime(sqlite_url, tmp_path, clock)
    try:
        ann, dead_campaign = await _campaign(runtime, dead_server.port, RECIPIENTS[:10])
        bob, bob_mailbox = await smtp_sender(
            runtime, email="bob@beta.com", smtp_port=healthy.port, password=PASSWORD
        )
        live_campaign = await runtime.campaigns.create_campaign(
            bob.user_id,
            mailbox_id=bob_mailbox.mailbox_id,
            campaign_name="Live",
            subject="Hi",
            message="Hello",
            duration=24,
            start_time=clock(),
        )
        rows = "email\n" + "".join(f"{address}\n" for address in RECIPIENTS[:10])
        await runtime.sending.import_recipients(
            bob.user_id, live_campaign.campaign_id, io.BytesIO(rows.encode())
        )
        await make_due_now(runtime)
        worker = runtime.worker()
        started = time.monotonic()
        await worker.tick()
        seconds = time.monotonic() - started
        await worker.close()
        dead_records = await _records(runtime, ann.id, dead_campaign.campaign_id)
        live = await runtime.sending.status_counts(bob.user_id, live_campaign.campaign_id)
    finally:
        await runtime.close()
        healthy.stop()

    # The healthy mailbox's mail went out in the same pass.
    assert live["sent"] == 10 and len(healthy.inbox.messages) == 10
    # The dead server was tried once: one connection, held for the timeout, then nothing
    # more in this pass — not one timeout per claimed record.
    assert dead_server.log.connections == 1
    (stall,) = dead_server.log.of_kind(Fault.GREETING_STALL)
    assert stall.held_seconds is not None and stall.held_seconds <= TIMEOUT + SLACK
    assert seconds <= TIMEOUT + SLACK, seconds
    statuses = Counter(r.status for r in dead_records.values())
    assert statuses == {TrackingStatus.PENDING: 10}  # nothing sending, nothing uncertain
    # The group marked `sending` together goes back to the queue, later: the one tried
    # spent an attempt, the four not tried did not.
    group = [r for r in dead_records.values() if r.last_error]
    assert len(group) == 5
    assert all(r.scheduled_at is not None and r.scheduled_at > clock() for r in group)
    errors = sorted(r.last_error or "" for r in group)
    assert sum(e.startswith("not tried: ") for e in errors) == 4, errors
    assert all("timed out" in e.lower() for e in errors), errors
    assert sorted(r.attempts for r in group) == [0, 0, 0, 0, 1]
    untouched = [r for r in dead_records.values() if not r.last_error]
    assert len(untouched) == 5 and all(r.lease_owner is None for r in untouched)
    assert all(r.attempts == 0 for r in untouched)
    assert dead_server.inbox.messages == []
    print(
        f"\n[item 3 · dead server] one pass over 10 records of a silent server and 10 of a "
        f"healthy one: {seconds:.2f} s, {dead_server.log.connections} connection to the "
        f"silent one held {stall.held_seconds:.2f} s (timeout {TIMEOUT} s)"
    )


async def test_a_worker_stops_promptly_while_its_server_stalls(
    sqlite_url: str, tmp_path: Path, dead_server: FaultySmtpServer
) -> None:
    import asyncio

    clock = FakeClock(START)
    runtime = await _runtime(sqlite_url, tmp_path, clock)
    try:
        user, campaign = await _campaign(runtime, dead_server.port, RECIPIENTS[:20])
        worker = runtime.worker()
        running = asyncio.create_task(worker.run())
        assert await asyncio.to_thread(dead_server.log.stalling.wait, 30)
        asked = time.monotonic()
        worker.stop()
        await asyncio.wait_for(running, timeout=60)
        seconds = time.monotonic() - asked
        counts = await runtime.sending.status_counts(user.user_id, campaign.campaign_id)
    finally:
        await runtime.close()

    assert seconds <= TIMEOUT + SLACK, seconds
    assert counts["pending"] == 20 and counts["sending"] == counts["uncertain"] == 0
    print(f"\n[item 3 · stop] stop() during a stall returned after {seconds:.2f} s")


def _report(recipient: str, original_id: str, status: str, action: str | None) -> bytes:
    """An RFC 3464 delivery-status report about one message, as a remote server sends it."""
    action_line = f"Action: {action}\r\n" if action else ""
    return (
        "From: MAILER-DAEMON@mx.example.com\r\nTo: ann@acme.com\r\n"
        f"Subject: Delivery Status Notification\r\nMessage-ID: <dsn-{status}-{recipient}>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nA report about your message.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n{action_line}Status: {status}\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: ann@acme.com\r\nTo: {recipient}\r\nMessage-ID: {original_id}\r\n\r\n"
        "--B--\r\n"
    ).encode()


async def test_delivery_reports_count_as_bounces_only_when_the_server_gave_up(
    database_url: str, tmp_path: Path
) -> None:
    sent = [f"s{n}@example.com" for n in range(1, 6)]
    lost = ["u1@example.com", "u2@example.com"]
    plan = FaultPlan(first_attempt=dict.fromkeys(lost, Fault.DROP_AFTER_DATA))
    server = FaultySmtpServer(plan, {"ann@acme.com": PASSWORD}).start()
    clock = FakeClock(START)
    runtime = await _runtime(database_url, tmp_path, clock)
    try:
        user, campaign = await _campaign(runtime, server.port, sent + lost)
        await _drain(runtime, clock, user.id, campaign.campaign_id)
        before = await _records(runtime, user.id, campaign.campaign_id)
        assert {before[a].status for a in sent} == {TrackingStatus.SENT}
        assert {before[a].status for a in lost} == {TrackingStatus.UNCERTAIN}
        start = await runtime.metrics.get_campaign_metrics(campaign.campaign_id)
        assert (start.total_sent, start.total_bounced) == (5, 0)

        mailbox = await runtime.store.get_mailbox_unscoped(before[sent[0]].mailbox_id)
        assert mailbox is not None
        poller = runtime.inbox_poller()
        reports = [
            (sent[0], "4.4.1", "delayed", "delayed"),  # still trying: not a bounce
            (sent[1], "4.4.7", "failed", "soft_bounce"),  # gave up: a bounce, not suppressed
            (sent[2], "5.1.1", "failed", "hard_bounce"),  # no such user: bounce, suppressed
            (sent[3], "4.2.2", None, "delayed"),  # no Action: 4.x.x reads as delayed
            (lost[0], "4.4.1", "delayed", "delayed"),  # proves the uncertain one left
            (lost[1], "5.1.1", "failed", "hard_bounce"),  # … and this one left and bounced
            (sent[0], "5.4.7", "failed", "hard_bounce"),  # the delayed one, given up later
        ]
        kinds = []
        for address, status, action, _ in reports:
            raw = _report(address, before[address].message_id or "", status, action)
            kinds.append((await poller.process(mailbox, raw)).value)
        after = await _records(runtime, user.id, campaign.campaign_id)
        metrics = await runtime.metrics.get_campaign_metrics(campaign.campaign_id)
        recomputed = await runtime.tracking.recompute(user.user_id, campaign.campaign_id)
        suppressed = await runtime.store.suppressed_among(user.id, sent + lost)
        delay_events = await runtime.store.list_events(user.id, after[sent[3]].id)
    finally:
        await runtime.close()
        server.stop()

    assert kinds == [kind for *_, kind in reports]
    status = {address: after[address].status for address in sent + lost}
    assert status == {
        sent[0]: TrackingStatus.BOUNCED,
        sent[1]: TrackingStatus.BOUNCED,
        sent[2]: TrackingStatus.BOUNCED,
        sent[3]: TrackingStatus.SENT,
        sent[4]: TrackingStatus.SENT,
        lost[0]: TrackingStatus.SENT,
        lost[1]: TrackingStatus.BOUNCED,
    }
    assert after[sent[3]].bounced_at is None and after[lost[0]].bounced_at is None
    assert [(e.type.value, e.details.get("status")) for e in delay_events] == [
        ("queued", None),
        ("sent", None),
        ("delay", "4.2.2"),
    ]
    # A report proves an uncertain message left, but not when the server took it.
    assert after[lost[0]].sent_at is not None and after[lost[0]].delivered_at is None
    assert after[sent[4]].delivered_at == after[sent[4]].sent_at
    assert suppressed == {sent[0], sent[2], lost[1]}  # hard bounces (5.x.x) only
    assert (metrics.total_sent, metrics.total_bounced, metrics.total_delivered) == (7, 4, 3)
    assert metrics.bounce_rate == 57.14
    counted = ("total_sent", "total_bounced", "total_delivered", "bounce_rate")
    assert {f: getattr(recomputed, f) for f in counted} == {f: getattr(metrics, f) for f in counted}
