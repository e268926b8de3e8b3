"""Replies, automatic replies and bounce reports read from a real IMAP server (Dovecot on
loopback), on every backend."""

from __future__ import annotations

import imaplib
import time
from datetime import timedelta
from pathlib import Path

import pytest

from mailramp.accounts.models import User
from mailramp.errors import MailboxUnusableError
from mailramp.mailboxes.models import Mailbox, TransportSecurity
from mailramp.mailboxes.service import MailboxCredentials
from mailramp.mailboxes.transport import Inbox, InboxBatch
from mailramp.providers.imap import ImapInbox
from mailramp.providers.registry import DefaultInboxes
from mailramp.tracking.inbox import InboxPoller
from mailramp.tracking.models import TrackingStatus
from mailramp.tracking.repository import RecipientQuery
from tests.sending.conftest import World
from tests.support.dovecot import Dovecot
from tests.support.tls import self_signed

CSV = "email,first_name\n" + "".join(
    f"{name}@example.com,{name.title()}\n" for name in ("alice", "bob", "carol", "dave", "erin")
)


def _append(server: Dovecot, *messages: bytes) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.port)
    client.login("ann@acme.com", "imap-password")
    for message in messages:
        client.append("INBOX", None, imaplib.Time2Internaldate(time.time()), message)
    client.logout()


def _clear(server: Dovecot) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.port)
    client.login("ann@acme.com", "imap-password")
    _, count = client.select("INBOX")
    if int(count[0] or 0):
        client.store("1:*", "+FLAGS", "\\Deleted")
        client.expunge()
    client.logout()


async def reading_sender(world: World, dovecot: Dovecot) -> tuple[User, Mailbox]:
    """A sender whose inbox is Dovecot's (emptied), the same password for SMTP and IMAP."""
    _clear(dovecot)
    user, mailbox = await world.sender(
        imap_host="127.0.0.1",
        imap_port=dovecot.port,
        imap_security="plain",
        imap_username="ann@acme.com",
    )
    world.smtp.inbox.accounts["ann@acme.com"] = "imap-password"
    await world.mailboxes.update_mailbox(user.user_id, mailbox.mailbox_id, password="imap-password")
    return user, mailbox


def inbox_poller(world: World) -> InboxPoller:
    """The inbox poller a worker runs, on the world's store and clock, every 60 s."""
    return InboxPoller(
        world.store,
        world.mailboxes,
        DefaultInboxes(allow_private_hosts=True),
        clock=world.clock,
        interval_seconds=60,
    )


def reply(to_message_id: str) -> bytes:
    return (
        "From: Alice <alice@example.com>\r\nTo: ann@acme.com\r\nSubject: Re: Hello Alice\r\n"
        f"Message-ID: <r1@example.com>\r\nIn-Reply-To: {to_message_id}\r\n"
        f"References: {to_message_id}\r\n\r\nSounds good, let's talk.\r\n"
    ).encode()


def auto_reply(to_message_id: str) -> bytes:
    return (
        "From: bob@example.com\r\nTo: ann@acme.com\r\nSubject: Automatic reply: Hello Bob\r\n"
        "Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n"
        f"Message-ID: <r2@example.com>\r\nIn-Reply-To: {to_message_id}\r\n\r\nI am away.\r\n"
    ).encode()


def dsn(recipient: str, original_id: str, status: str, action: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.com\r\nTo: ann@acme.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-"
        f"{status}@mx.example.com>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: ann@acme.com\r\nTo: {recipient}\r\nMessage-ID: {original_id}\r\n\r\n"
        "--B--\r\n"
    ).encode()


UNRELATED = (
    b"From: news@example.org\r\nTo: ann@acme.com\r\nSubject: Newsletter\r\n"
    b"Message-ID: <n1@example.org>\r\nIn-Reply-To: <not-ours@example.org>\r\n\r\nHi\r\n"
)


async def test_replies_auto_replies_and_bounces_are_told_apart(
    world: World, dovecot: Dovecot
) -> None:
    user, mailbox = await reading_sender(world, dovecot)
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=1)
    await world.run(world.worker(), until=campaign.end_time)
    records = {
        r.recipient_email: r
        for r in (
            await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
        ).items
    }
    assert {r.status for r in records.values()} == {TrackingStatus.SENT}
    ids = {email.split("@")[0]: r.message_id or "" for email, r in records.items()}

    _append(
        dovecot,
        reply(ids["alice"]),
        auto_reply(ids["bob"]),
        dsn("carol@example.com", ids["carol"], "5.1.1", "failed"),
        dsn("dave@example.com", ids["dave"], "4.2.2", "delayed"),
        dsn("erin@example.com", ids["erin"], "2.0.0", "delivered"),
        UNRELATED,
    )
    poller = inbox_poller(world)
    seen = await poller.poll_once()
    assert seen == {
        "reply": 1,
        "auto_reply": 1,
        "hard_bounce": 1,
        "delayed": 1,
        "delivered": 1,
        "unrelated": 1,
    }

    after = {
        r.recipient_email: r
        for r in (
            await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
        ).items
    }
    assert after["alice@example.com"].replied_at is not None
    assert after["alice@example.com"].status == TrackingStatus.SENT
    assert after["bob@example.com"].replied_at is None
    assert after["bob@example.com"].auto_replied_at is not None
    assert after["carol@example.com"].status == TrackingStatus.BOUNCED
    # A delay report is not a bounce: the remote server is still trying.
    assert after["dave@example.com"].status == TrackingStatus.SENT
    assert after["dave@example.com"].bounced_at is None
    assert after["erin@example.com"].status == TrackingStatus.SENT
    suppressed = await world.store.suppressed_among(
        user.id, ["carol@example.com", "dave@example.com"]
    )
    assert suppressed == {"carol@example.com"}  # only the hard bounce

    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert (metrics.total_sent, metrics.total_bounced, metrics.total_delivered) == (5, 1, 4)
    assert metrics.total_replied == 1 and metrics.total_auto_replied == 1
    assert metrics.reply_rate == 25.0 and metrics.bounce_rate == 20.0
    events = await world.store.list_events(user.id, after["carol@example.com"].id)
    assert [e.type for e in events] == ["queued", "sent", "bounce"]
    assert events[2].details["status"] == "5.1.1" and events[2].details["bounce"] == "hard"
    delivered = await world.store.list_events(user.id, after["erin@example.com"].id)
    assert [e.type for e in delivered] == ["queued", "sent", "delivered"]

    # The inbox is not read again within the interval, and read messages are not re-read.
    assert await poller.poll_once() == {}
    world.clock.advance(minutes=2)
    assert await poller.poll_once() == {}
    stored = await world.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id)
    assert stored.imap_last_uid is not None and stored.imap_last_uid >= 5
    again = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert again.total_replied == 1 and again.total_bounced == 1
    world.clock.advance(minutes=2)
    _append(dovecot, reply(ids["erin"]))
    assert await poller.poll_once() == {"reply": 1}
    assert (
        await world.store.get_tracking(user.id, after["erin@example.com"].id)
    ).replied_at is not None  # type: ignore[union-attr]
    assert campaign.end_time - campaign.start_time == timedelta(hours=1)


async def test_mail_sent_from_the_mailbox_itself_is_never_a_reply(
    world: World, dovecot: Dovecot
) -> None:
    user, mailbox = await reading_sender(world, dovecot)
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=1)
    await world.run(world.worker(), until=campaign.end_time)
    page = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    ids = {r.recipient_email.split("@")[0]: r.message_id or "" for r in page.items}
    sent_to_bob = world.smtp.inbox.to("bob@example.com")[0]

    _append(
        dovecot,
        # The email mailramp sent to Bob, as a copy lands back in the inbox (a Bcc to
        # oneself, a provider listing sent mail), here threaded as a follow-up would be.
        b"In-Reply-To: " + ids["alice"].encode() + b"\r\n" + sent_to_bob.as_bytes(),
        # The same copy from a send-as alias: its Message-ID is still one of ours.
        (
            "From: Ann <ann@alias.acme.com>\r\nTo: carol@example.com\r\nSubject: Re: Hi\r\n"
            f"Message-ID: {ids['carol']}\r\nIn-Reply-To: {ids['alice']}\r\n\r\nBump.\r\n"
        ).encode(),
        # The owner answering in the thread from their own mail client.
        (
            "From: Ann from Acme <Ann@Acme.com>\r\nTo: alice@example.com\r\n"
            f"Subject: Re: Hello Alice\r\nMessage-ID: <own-1@acme.com>\r\n"
            f"In-Reply-To: {ids['alice']}\r\n\r\nHappy to send details.\r\n"
        ).encode(),
        reply(ids["alice"]),  # and Alice's own answer
    )
    poller = inbox_poller(world)
    assert await poller.poll_once() == {"unrelated": 3, "reply": 1}
    after = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    replied = {r.recipient_email for r in after.items if r.replied_at is not None}
    assert replied == {"alice@example.com"}
    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert (metrics.total_replied, metrics.total_auto_replied) == (1, 0)


async def test_a_wrong_imap_password_puts_the_mailbox_in_error(
    world: World, dovecot: Dovecot
) -> None:
    user, mailbox = await world.sender(
        imap_host="127.0.0.1",
        imap_port=dovecot.port,
        imap_security="plain",
    )
    poller = InboxPoller(
        world.store,
        world.mailboxes,
        DefaultInboxes(allow_private_hosts=True),
        clock=world.clock,
    )
    assert await poller.poll_once() == {}
    broken = await world.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id)
    assert broken.status == "error"
    assert "IMAP login" in (broken.status_reason or "")


async def test_a_mailbox_unlinked_while_its_inbox_is_read_does_not_stop_the_pass(
    world: World, dovecot: Dovecot
) -> None:
    """Its owner unlinks a mailbox while the poller reads it: the poller goes on with the
    others instead of dropping the pass."""
    fields = {"imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_security": "plain"}
    user, unlinked = await world.sender(**fields)
    other_user, other = await world.sender(**fields)  # its IMAP password is wrong
    real = DefaultInboxes(allow_private_hosts=True)

    class UnlinkedWhileRead:
        async def fetch_new(self, **_: object) -> InboxBatch:
            await world.mailboxes.unlink_mailbox(user.user_id, unlinked.mailbox_id)
            raise MailboxUnusableError("IMAP login refused")

    def inboxes(mailbox: Mailbox, credentials: MailboxCredentials) -> Inbox:
        return UnlinkedWhileRead() if mailbox.id == unlinked.id else real(mailbox, credentials)

    poller = InboxPoller(world.store, world.mailboxes, inboxes, clock=world.clock)
    assert await poller.poll_once() == {}
    checked = await world.mailboxes.get_mailbox(other_user.user_id, other.mailbox_id)
    assert checked.status == "error" and "IMAP login" in (checked.status_reason or "")


@pytest.mark.parametrize("mode", ["tls", "starttls"])
async def test_inbox_over_tls_and_starttls(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert_file))
    server = Dovecot.start(
        {"ann@acme.com": "pw"}, cert_file=certificate.cert_file, key_file=certificate.key_file
    )
    try:
        client = imaplib.IMAP4("127.0.0.1", server.port)
        client.login("ann@acme.com", "pw")
        client.append("INBOX", None, None, UNRELATED)
        client.logout()
        port = server.tls_port if mode == "tls" else server.port
        inbox = ImapInbox(
            host="127.0.0.1",
            port=port,
            security=TransportSecurity(mode),
            username="ann@acme.com",
            password="pw",
            allow_private_hosts=True,
        )
        batch = await inbox.fetch_new(uid_validity=None, last_uid=None)
        assert [uid for uid, _ in batch.messages] == [1]
        assert b"Subject: Newsletter" in batch.messages[0][1]
        again = await inbox.fetch_new(uid_validity=batch.uid_validity, last_uid=1)
        assert again.messages == []
    finally:
        server.stop()


def test_serve_reads_replies_by_itself(dovecot: Dovecot, tmp_path: Path) -> None:
    import asyncio
    import io

    from mailramp.config import Settings
    from mailramp.runtime import open_runtime
    from tests.support.postgres import free_port
    from tests.support.processes import clean_environment, serving
    from tests.support.scenario import make_due_now, smtp_sender
    from tests.support.smtp import SmtpServer

    _clear(dovecot)
    smtp = SmtpServer({"ann@acme.com": "imap-password"}).start()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'mailramp.db'}",
        encryption_key_file=tmp_path / "mailramp.key",
        allow_private_hosts=True,
    )

    async def send() -> tuple[str, str]:
        runtime = await open_runtime(settings)
        try:
            user, mailbox = await smtp_sender(
                runtime,
                email="ann@acme.com",
                smtp_port=smtp.port,
                password="imap-password",
                imap_host="127.0.0.1",
                imap_port=dovecot.port,
                imap_security="plain",
            )
            campaign = await runtime.campaigns.create_campaign(
                user.user_id,
                mailbox_id=mailbox.mailbox_id,
                campaign_name="Serve",
                subject="Hi",
                message="Hello",
                duration=2,
                start_time=runtime.clock() - timedelta(minutes=5),
            )
            await runtime.sending.import_recipients(
                user.user_id, campaign.campaign_id, io.BytesIO(b"email\nzed@example.com\n")
            )
            await make_due_now(runtime)
            worker = runtime.worker()
            while await worker.tick():
                pass
            await worker.close()
            page = await runtime.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
            return campaign.campaign_id, page.items[0].message_id or ""
        finally:
            await runtime.close()

    async def replied(campaign_id: str) -> int:
        runtime = await open_runtime(settings)
        try:
            return (await runtime.metrics.get_campaign_metrics(campaign_id)).total_replied
        finally:
            await runtime.close()

    try:
        campaign_id, message_id = asyncio.run(send())
    finally:
        smtp.stop()
    _append(dovecot, reply(message_id))
    port = free_port()
    environment = clean_environment(
        MAILRAMP_ALLOW_PRIVATE_HOSTS="true", MAILRAMP_INBOX_POLL_INTERVAL_SECONDS="1"
    )
    with serving(port, cwd=tmp_path, env=environment):
        deadline = time.monotonic() + 30
        while asyncio.run(replied(campaign_id)) == 0 and time.monotonic() < deadline:
            time.sleep(0.3)
    assert asyncio.run(replied(campaign_id)) == 1


async def test_a_reply_stops_the_colleagues_still_waiting_when_the_campaign_says_so(
    world: World, dovecot: Dovecot
) -> None:
    user, mailbox = await reading_sender(world, dovecot)
    rows = (
        "email\nana@initech.example\nbo@initech.example\ncy@initech.example.net\n"
        "dee@gmail.com\neve@gmail.com\n"
    )
    campaign, _ = await world.campaign(user, mailbox, rows, duration=48, stop_company_on_reply=True)
    find = world.tracking.find_recipient
    # Ana and Dee are emailed first; the others wait for their turn, a day later.
    await world.send_first("ana@initech.example", "dee@gmail.com")
    sent = {
        email: (await find(user.user_id, campaign.campaign_id, email)).message_id
        for email in ("ana@initech.example", "dee@gmail.com")
    }
    assert all(sent.values())

    def answer(sender: str, message_id: str) -> bytes:
        return (
            f"From: {sender}\r\nTo: ann@acme.com\r\nSubject: Re: Hello\r\n"
            f"Message-ID: <{sender}.answer@example.net>\r\nIn-Reply-To: {message_id}\r\n\r\n"
            "Interested, call me.\r\n"
        ).encode()

    _append(
        dovecot,
        answer("ana@initech.example", sent["ana@initech.example"]),
        answer("dee@gmail.com", sent["dee@gmail.com"]),
    )
    poller = inbox_poller(world)
    assert await poller.poll_once() == {"reply": 2}
    after = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    states = {r.recipient_email: r.status.value for r in after.items}
    assert states == {
        "ana@initech.example": "sent",
        "bo@initech.example": "stopped",  # Ana's colleague
        "cy@initech.example.net": "pending",  # another domain
        "dee@gmail.com": "sent",
        "eve@gmail.com": "pending",  # a public provider says nothing about a company
    }
    bo = next(r for r in after.items if r.recipient_email == "bo@initech.example")
    events = await world.store.list_events(user.id, bo.id)
    assert [(e.type, e.details) for e in events] == [
        ("queued", {}),
        ("stopped", {"source": "company_reply", "because": "ana@initech.example"}),
    ]
