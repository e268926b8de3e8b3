"""The warm-up pool against a real mail system on loopback: an SMTP server that delivers
into Dovecot mailboxes (LMTP) through a Sieve rule that files some warm-up emails into
Junk, four opted-in mailboxes and an injected clock over ten days. Each day's volume follows
the warm-up ramp (2, 4, 6 … a day; none at the weekend), every warm-up email is found, the
ones in Junk are moved to the inbox (checked over IMAP), replies are threaded, the
placement figures equal what the rule did, and no campaign figure moves."""

from __future__ import annotations

import imaplib
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest

from mailramp.deliverability.models import Placement, WarmupStatus
from mailramp.deliverability.pool import WarmupPool
from mailramp.kit.marked_ids import WarmupMarker, new_key
from mailramp.mailboxes.models import Mailbox
from mailramp.mailboxes.ramp import day_key
from mailramp.providers.registry import DefaultInboxes, DefaultProviders
from mailramp.runtime import Services
from mailramp.storage.sql import SqlStore, tables
from mailramp.tracking.inbox import InboxPoller
from tests.conftest import make_campaign, make_user, services_on
from tests.support.clock import MONDAY_MORNING, FakeClock
from tests.support.dovecot import Dovecot
from tests.support.smtp import SmtpServer

ACCOUNTS = {
    "ana@one.example": "pw-ana",
    "ben@two.example": "pw-ben",
    "cai@three.example": "pw-cai",
    "dee@four.example": "pw-dee",
}
JUNK_WORD = "Lunch"
"""The Sieve rule files every message whose subject contains this word into Junk."""
DAYS = 10
EXPECTED_VOLUMES = [2, 4, 6, 8, 10, 0, 0, 12, 14, 16]
"""Monday 1 March 2027 on: five weekdays, a weekend, three weekdays."""


@pytest.fixture
def mail_system() -> Iterator[tuple[Dovecot, SmtpServer]]:
    dovecot = Dovecot.start(ACCOUNTS, junk_rule=f'header :contains "subject" "{JUNK_WORD}"')
    assert dovecot.lmtp_port is not None
    smtp = SmtpServer(ACCOUNTS, lmtp_port=dovecot.lmtp_port).start()
    try:
        yield dovecot, smtp
    finally:
        smtp.stop()
        dovecot.stop()


def _imap(dovecot: Dovecot, address: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", dovecot.port)
    client.login(address, ACCOUNTS[address])
    return client


def _folder(dovecot: Dovecot, address: str, folder: str) -> list[tuple[set[str], Any]]:
    """(flags, message) of every message in the folder."""
    client = _imap(dovecot, address)
    try:
        client.select(folder, readonly=True)
        _, data = client.uid("SEARCH", "ALL")
        found = []
        for uid in (data[0] or b"").split():
            _, parts = client.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
            head, body = parts[0]
            flags = {f.decode() for f in imaplib.ParseFlags(head)}
            found.append((flags, message_from_bytes(body, policy=policy.default)))
        return found
    finally:
        client.logout()


async def _pool_members(services: Services, smtp: SmtpServer, dovecot: Dovecot) -> list[Mailbox]:
    members = []
    for address, password in ACCOUNTS.items():
        user = await make_user(services)
        members.append(
            await services.mailboxes.create_mailbox(
                user.user_id,
                email=address,
                provider="smtp",
                display_name=address.split("@")[0].title(),
                smtp_host="127.0.0.1",
                smtp_port=smtp.port,
                smtp_security="plain",
                imap_host="127.0.0.1",
                imap_port=dovecot.port,
                imap_security="plain",
                password=password,
                daily_limit=50,
            )
        )
    for member in members:
        await services.store.update_mailbox(member.user_id, member.id, {"warmup_enabled": True})
    return members


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_ten_days_of_warm_up_on_a_real_mail_system(
    store: SqlStore, secret_box: Any, mail_system: tuple[Dovecot, SmtpServer]
) -> None:
    dovecot, smtp = mail_system
    clock = FakeClock(MONDAY_MORNING)
    services = services_on(store, secret_box, clock)
    members = await _pool_members(services, smtp, dovecot)
    by_id = {member.id: member for member in members}
    # A campaign of one of them, waiting: no warm-up email may touch its figures.
    owner = await services.accounts.get_user(members[0].user_id)
    campaign = await make_campaign(services, owner, members[0])
    before = await services.metrics.get_campaign_metrics(campaign.campaign_id)
    marker = WarmupMarker(new_key())
    pool = WarmupPool(
        store,
        services.mailboxes,
        DefaultProviders(allow_private_hosts=True),
        DefaultInboxes(allow_private_hosts=True),
        marker,
        clock=clock,
    )

    for day in range(DAYS):
        clock.now = MONDAY_MORNING + timedelta(days=day)
        while clock.now < MONDAY_MORNING + timedelta(days=day, hours=9):  # 09:00 to 18:00
            await pool.run_once()
            clock.advance(minutes=30)
        await services.deliverability.roll_up()
    clock.now = MONDAY_MORNING + timedelta(days=DAYS - 1, hours=10)
    await pool.run_once()  # the last emails found

    async with store.engine.begin() as connection:
        rows = (await connection.execute(tables.warmup_emails.select())).mappings().all()
    emails = [dict(row) for row in rows]
    sent = [e for e in emails if e["status"] == WarmupStatus.SENT.value]

    # Each day, each member opened as many conversations as its ramp allows.
    openings: Counter[tuple[str, str]] = Counter(
        (e["mailbox_id"], day_key(e["sent_at"])) for e in sent if e["step"] == 0
    )
    for member in members:
        volumes = [
            openings[member.id, day_key(MONDAY_MORNING + timedelta(days=d))] for d in range(DAYS)
        ]
        assert volumes == EXPECTED_VOLUMES, (member.email, volumes)
    assert {e["status"] for e in emails} <= {"sent", "planned"}
    # Every email sent was found, where the rule put it; the Junk ones were rescued.
    unfound = [
        (e["step"], e["sent_at"], e["subject"], e["to_mailbox_id"])
        for e in sent
        if e["found_at"] is None
    ]
    assert unfound == []
    for email in sent:
        junk = JUNK_WORD in email["subject"]
        assert email["placement"] == (Placement.SPAM if junk else Placement.INBOX).value
        assert (email["rescued_at"] is not None) == junk and email["read_at"] is not None
    assert any(JUNK_WORD in e["subject"] for e in sent)  # the rule had something to do
    for address in ACCOUNTS:
        assert _folder(dovecot, address, "Junk") == []
        inbox = _folder(dovecot, address, "INBOX")
        received = [e for e in sent if by_id[e["to_mailbox_id"]].email == address]
        assert len(inbox) == len(received)
        assert all({"\\Seen", "\\Flagged"} <= flags for flags, _ in inbox)
        for _, message in inbox:
            assert "http" not in message.get_content() and message["List-Unsubscribe"] is None
    # Replies (about 30 %) are in the same thread.
    replies = [e for e in sent if e["step"] > 0]
    assert 0.15 * len(sent) < len(replies) < 0.45 * len(sent)
    ids = {e["message_id"]: e for e in emails}
    for reply in replies:
        parent = ids[reply["in_reply_to"]]
        assert reply["thread_id"] == parent["thread_id"]
        assert reply["to_mailbox_id"] == parent["mailbox_id"]
        assert reply["subject"] == (
            parent["subject"]
            if parent["subject"].startswith("Re: ")
            else f"Re: {parent['subject']}"
        )
    # The placement figures are what the rule did, per sender and day.
    for member in members:
        days = await store.mailbox_days(member.id)
        spam: defaultdict[str, int] = defaultdict(int)
        for email in sent:
            if email["mailbox_id"] == member.id and JUNK_WORD in email["subject"]:
                spam[day_key(email["sent_at"])] += 1
        assert {d.day: d.warmup_spam for d in days if d.warmup_spam} == dict(spam)
        assert sum(d.warmup_sent for d in days) == sum(
            1 for e in sent if e["mailbox_id"] == member.id
        )
        assert all(d.campaign_sent == 0 for d in days)
    # The inbox poller sees warm-up mail as warm-up: nothing recorded, nothing unmatched.
    poller = InboxPoller(
        store, services.mailboxes, DefaultInboxes(allow_private_hosts=True), clock=clock,
        warmup=marker, interval_seconds=0,
    )  # fmt: skip
    seen = await poller.poll_once()
    assert set(seen) == {"warmup"} and seen["warmup"] == len(sent)
    after = await services.metrics.get_campaign_metrics(campaign.campaign_id)
    assert after == before
    for member in members:
        assert (await store.list_unmatched(member.user_id)).total == 0
