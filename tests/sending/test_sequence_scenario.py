"""A 3-step campaign from 2 mailboxes to 30 people, through a real SMTP server and a real
IMAP server (Dovecot) on loopback, with an injected clock that moves ten days: some answer
the first email, one address bounces, one person unsubscribes after the second, one is
out of office. Each person's emails, their threading and sender, the daily limits of a
mailbox another campaign shares, and the metrics are what a user would check."""

from __future__ import annotations

import imaplib
import time
from collections import Counter, defaultdict
from datetime import timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import pytest

from mailramp.accounts.models import User
from mailramp.kit.signing import TokenSigner
from mailramp.mailboxes.models import Mailbox
from mailramp.metrics.figures import by_key
from mailramp.tracking.links import TrackingLinks
from mailramp.tracking.service import Visitor
from tests.conftest import TRACKING_KEY
from tests.sending.conftest import World
from tests.support.dovecot import Dovecot
from tests.tracking.test_inbox import inbox_poller

PEOPLE = [f"p{n:02}@example.com" for n in range(30)]
REPLY_AFTER_FIRST = PEOPLE[:5]
BOUNCES, UNSUBSCRIBES, AWAY = PEOPLE[5], PEOPLE[6], PEOPLE[7]
LIMIT = 12
POSTPONE_DAYS = 3


def _imap(server: Dovecot, account: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.port)
    client.login(account, "imap-password")
    return client


def _empty(server: Dovecot, account: str) -> None:
    client = _imap(server, account)
    _, count = client.select("INBOX")
    if int(count[0] or 0):
        client.store("1:*", "+FLAGS", "\\Deleted")
        client.expunge()
    client.logout()


def _deliver(server: Dovecot, account: str, raw: bytes) -> None:
    client = _imap(server, account)
    client.append("INBOX", None, imaplib.Time2Internaldate(time.time()), raw)
    client.logout()


def _answer(email: EmailMessage, *, away: bool) -> bytes:
    """What the person's mail program sends back to `email`."""
    person, mailbox = email["To"], email["From"].split("<")[-1].rstrip(">")
    headers = f"From: {person}\r\nTo: {mailbox}\r\nSubject: Re: {email['Subject']}\r\n"
    headers += f"Message-ID: <answer.{person}>\r\nIn-Reply-To: {email['Message-ID']}\r\n"
    if away:
        headers += "Auto-Submitted: auto-replied\r\n"
        return (headers + "\r\nI am out of the office until next week.\r\n").encode()
    return (headers + "\r\nThanks, let's talk on Thursday.\r\n").encode()


async def _mailbox(world: World, user: User, email: str, dovecot: Dovecot) -> Mailbox:
    world.smtp.inbox.accounts[email] = "imap-password"
    _empty(dovecot, email)
    return await world.mailboxes.create_mailbox(
        user.user_id,
        email=email,
        provider="smtp",
        smtp_host="127.0.0.1",
        smtp_port=world.smtp.port,
        smtp_security="plain",
        imap_host="127.0.0.1",
        imap_port=dovecot.port,
        imap_security="plain",
        imap_username=email,
        password="imap-password",
        display_name=email.split("@")[0].title(),
        daily_limit=LIMIT,
    )


# On SQLite only (CI time): the same store paths run on PostgreSQL in test_sequences.py and
# test_sequence_property.py.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_three_steps_from_two_mailboxes_to_thirty_people(
    world: World, dovecot: Dovecot
) -> None:
    user = await world.accounts.create_user(user_name="Ann", login_id="ann-sequences")
    ann = await _mailbox(world, user, "ann@acme.com", dovecot)
    zed = await _mailbox(world, user, "zed@acme.com", dovecot)
    start = world.clock.now
    # Another campaign already sends 5 emails from ann on the first day.
    others = "email\n" + "".join(f"other{n}@example.org\n" for n in range(5))
    other, _ = await world.campaign(user, ann, others, duration=8, start_time=start)
    rows = "email,first_name\n" + "".join(f"{p},P{p[1:3]}\n" for p in PEOPLE)
    campaign, report = await world.campaign(
        user,
        ann,
        rows,
        mailbox_ids=[ann.mailbox_id, zed.mailbox_id],
        subject="Quick question, {{first_name}}",
        duration=24 * 10,
        start_time=start,
        auto_reply_postpone_days=POSTPONE_DAYS,
        campaign_steps=[
            {"delay_days": 2, "message": "Hi {{first_name}}, bumping this up."},
            {"delay_days": 2, "subject": "Last note for {{first_name}}", "message": "Bye."},
        ],
    )
    assert report.accepted == 30
    world.smtp.inbox.rcpt_replies[BOUNCES].append("550 5.1.1 no such mailbox here!")

    links = TrackingLinks(TokenSigner([TRACKING_KEY]), "https://t.acme.example")
    worker, poller = world.worker(tracking=links), inbox_poller(world)
    seen = 0
    received: dict[str, list[EmailMessage]] = defaultdict(list)
    away_at = None
    while world.clock.now < campaign.end_time:
        while await worker.tick():
            pass
        for item in world.smtp.inbox.messages[seen:]:
            email, person = item.message, item.message["To"]
            received[person].append(email)
            account = item.sender
            if person in REPLY_AFTER_FIRST or (person == AWAY and len(received[person]) == 1):
                _deliver(dovecot, account, _answer(email, away=person == AWAY))
                away_at = world.clock.now if person == AWAY else away_at
            if person == UNSUBSCRIBES and len(received[person]) == 2:
                token = email["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1]
                visitor = Visitor(user_agent="Mozilla/5.0 (Macintosh) Safari/605", ip=None)
                assert await world.tracking.unsubscribe(token, visitor) is not None
        seen = len(world.smtp.inbox.messages)
        await poller.poll_once()
        world.clock.now += timedelta(hours=1)
    await worker.close()

    # Each person's emails: who answered got one; the bounce none; the others all three.
    counts = {person: len(received.get(person, [])) for person in PEOPLE}
    assert {p: counts[p] for p in REPLY_AFTER_FIRST} == dict.fromkeys(REPLY_AFTER_FIRST, 1)
    assert (counts[BOUNCES], counts[UNSUBSCRIBES], counts[AWAY]) == (0, 2, 3)
    everyone_else = [p for p in PEOPLE if counts[p] == 3]
    assert len(everyone_else) == 23
    for person in everyone_else:
        first, second, third = received[person]
        name = f"P{person[1:3]}"
        assert first["Subject"] == f"Quick question, {name}"
        assert second["Subject"] == f"Re: Quick question, {name}"
        assert second["In-Reply-To"] == first["Message-ID"]
        assert second["References"] == first["Message-ID"]
        assert third["Subject"] == f"Last note for {name}" and third["In-Reply-To"] is None
        assert len({m["From"] for m in (first, second, third)}) == 1  # one mailbox each
    senders = Counter(received[p][0]["From"] for p in PEOPLE if received.get(p))
    assert set(senders) == {"Ann <ann@acme.com>", "Zed <zed@acme.com>"}
    # The out-of-office held their second email for 3 days.
    assert away_at is not None
    second_away = received[AWAY][1]
    assert parsedate_to_datetime(second_away["Date"]) >= away_at + timedelta(days=POSTPONE_DAYS)

    # No mailbox ever sent more than its daily limit, the other campaign included.
    per_day = Counter(
        (item.sender, parsedate_to_datetime(item.message["Date"]).date())
        for item in world.smtp.inbox.messages
    )
    assert max(per_day.values()) <= LIMIT
    assert sum(n for (sender, _), n in per_day.items() if sender == "ann@acme.com") > 5

    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert metrics.total_sent == 30  # people: the bounced address counts as sent to
    assert (metrics.total_replied, metrics.total_bounced) == (5, 1)
    assert (metrics.total_unsubscribed, metrics.total_auto_replied) == (1, 1)
    funnel = await world.campaigns.step_figures(user.user_id, campaign.campaign_id)
    assert [by_key(step.figures)["sent"].count for step in funnel] == [30, 24, 23]
    assert by_key(funnel[0].figures)["replied"].count == 5
    other_metrics = await world.metrics.get_campaign_metrics(other.campaign_id)
    assert other_metrics.total_sent == 5
