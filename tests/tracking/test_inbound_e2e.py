"""Bounces, a complaint and an out-of-office reply in the formats real servers send, read
from a real IMAP server (Dovecot on loopback) after a real campaign went out, on SQLite,
PostgreSQL and the MongoDB adapter: what the user then sees in the metrics, the
suppression list, the recipients' timelines and the unmatched list."""

from __future__ import annotations

import pytest

from mailramp.providers.registry import DefaultInboxes
from mailramp.tracking.inbox import InboxPoller
from mailramp.tracking.models import EventType, TrackingStatus
from mailramp.tracking.repository import RecipientQuery
from tests.sending.conftest import World
from tests.storage.conftest import database_url, store
from tests.support.dovecot import Dovecot
from tests.tracking.test_inbox import CSV, _append, reading_sender

__all__ = ["database_url", "store"]  # every backend, MongoDB's adapter included

SENDER = "ann@acme.com"


def qmail_bounce(recipient: str, original_id: str) -> bytes:
    """qmail's notice: no report part, the address in `<...>:` and the original below."""
    return (
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx1.example.com\r\n"
        f"To: {SENDER}\r\nSubject: failure notice\r\nMessage-ID: <q1@mx1.example.com>\r\n\r\n"
        "Hi. This is the qmail-send program at mx1.example.com.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        f"<{recipient}>:\r\n192.0.2.7 does not like recipient.\r\n"
        f"Remote host said: 550 sorry, no mailbox here by that name. (#5.1.1)\r\n"
        "Giving up on 192.0.2.7.\r\n\r\n"
        "--- Below this line is a copy of the message.\r\n\r\n"
        f"Return-Path: <{SENDER}>\r\nFrom: Ann <{SENDER}>\r\nTo: {recipient}\r\n"
        f"Subject: Hello\r\nMessage-ID: {original_id}\r\n\r\nHi,\r\n"
    ).encode()


def exchange_bounce(recipient: str) -> bytes:
    """Exchange's plain-text notice, which quotes no Message-ID at all."""
    return (
        "From: System Administrator <postmaster@corp.example.net>\r\n"
        f"To: {SENDER}\r\nSubject: Undeliverable: Hello\r\n"
        "Message-ID: <x1@corp.example.net>\r\nContent-Type: text/plain\r\n\r\n"
        "Your message did not reach some or all of the intended recipients.\r\n\r\n"
        "      Subject:\tHello\r\n      Sent:\t3/1/2027 9:05 AM\r\n\r\n"
        "The following recipient(s) could not be reached:\r\n\r\n"
        f"      {recipient} on 3/1/2027 9:06 AM\r\n"
        "            The e-mail account does not exist at the organization this message "
        "was sent to.\r\n            <corp.example.net #5.1.1>\r\n"
    ).encode()


def arf_complaint(recipient: str, original_id: str) -> bytes:
    """A feedback-loop report (RFC 5965) as mailbox providers send them."""
    return (
        "From: Feedback Loop <fbl@isp.example.org>\r\n"
        f"To: {SENDER}\r\nSubject: FW: Hello\r\nMessage-ID: <f1@isp.example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n\r\n'
        "--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "--F\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: ExampleFBL/1.0\r\nVersion: 1\r\n"
        f"Original-Mail-From: <{SENDER}>\r\nOriginal-Rcpt-To: <{recipient}>\r\n"
        "Arrival-Date: Mon, 1 Mar 2027 09:07:00 +0000\r\n\r\n"
        "--F\r\nContent-Type: message/rfc822\r\n\r\n"
        f"From: Ann <{SENDER}>\r\nTo: {recipient}\r\nSubject: Hello\r\n"
        f"Message-ID: {original_id}\r\n\r\nHi,\r\n--F--\r\n"
    ).encode()


def german_out_of_office(sender: str) -> bytes:
    """An out-of-office notice that names no Message-ID (some servers leave it out)."""
    return (
        f"From: Dave <{sender}>\r\nTo: {SENDER}\r\n"
        "Subject: =?UTF-8?Q?Abwesenheitsnotiz=3A_Hello?=\r\n"
        "Auto-Submitted: auto-replied\r\nMessage-ID: <ooo1@example.com>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Ich bin bis zum 15. M\u00e4rz nicht im B\u00fcro.\r\n"
    ).encode()


@pytest.mark.usefixtures("database_url")
async def test_what_the_servers_send_back_lands_where_the_user_looks(
    world: World, dovecot: Dovecot
) -> None:
    user, mailbox = await reading_sender(world, dovecot)
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=1)
    await world.run(world.worker(), until=campaign.end_time)
    page = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    records = {r.recipient_email.split("@")[0]: r for r in page.items}
    assert {r.status for r in records.values()} == {TrackingStatus.SENT}

    _append(
        dovecot,
        qmail_bounce("alice@example.com", records["alice"].message_id or ""),
        exchange_bounce("bob@example.com"),
        arf_complaint("carol@example.com", records["carol"].message_id or ""),
        german_out_of_office("dave@example.com"),
        exchange_bounce("stranger@example.org"),  # never mailed from here: unmatched
    )
    poller = InboxPoller(
        world.store, world.mailboxes, DefaultInboxes(allow_private_hosts=True), clock=world.clock
    )
    assert await poller.poll_once() == {
        "hard_bounce": 2,
        "complaint": 1,
        "auto_reply": 1,
        "unrelated": 1,
    }

    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert (metrics.total_sent, metrics.total_bounced, metrics.total_delivered) == (5, 2, 3)
    assert (metrics.total_complained, metrics.complaint_rate) == (1, 33.33)
    assert (metrics.total_auto_replied, metrics.total_replied) == (1, 0)

    suppressed = await world.suppression.list_suppressions(user.user_id)
    reasons = {s.email: s.reason.value for s in suppressed.items}
    assert reasons == {
        "alice@example.com": "bounced",
        "bob@example.com": "bounced",
        "carol@example.com": "complained",
    }

    async def timeline(name: str) -> list[tuple[EventType, dict[str, object]]]:
        _, events = await world.tracking.recipient_events(
            user.user_id, campaign.campaign_id, records[name].id
        )
        return [(event.type, event.details) for event in events]

    [(kind, alice)] = await timeline("alice")
    assert kind is EventType.BOUNCE
    assert (alice["bounce"], alice["status"], alice["reason"]) == ("hard", "5.1.1", "user_unknown")
    assert alice["reply_code"] == "550"
    [(kind, bob)] = await timeline("bob")
    assert (kind, bob["status"], bob["reason"]) == (EventType.BOUNCE, "5.1.1", "user_unknown")
    [(kind, carol)] = await timeline("carol")
    assert (kind, carol["feedback_type"]) == (EventType.COMPLAINT, "abuse")
    [(kind, dave)] = await timeline("dave")
    assert (kind, dave["subject"]) == (EventType.AUTO_REPLY, "Abwesenheitsnotiz: Hello")
    assert await timeline("erin") == []

    unmatched = await world.tracking.list_unmatched(user.user_id)
    assert [(u.kind, u.recipient, u.status) for u in unmatched.items] == [
        ("hard_bounce", "stranger@example.org", "5.1.1")
    ]
