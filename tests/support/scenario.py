"""Set-ups several tests and benchmarks share: an SMTP sender, and records made due now."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from mailramp.accounts.models import User
from mailramp.mailboxes.models import Mailbox
from mailramp.runtime import Runtime


async def smtp_sender(
    runtime: Runtime, *, email: str, smtp_port: int, password: str = "pw", **fields: Any
) -> tuple[User, Mailbox]:
    """A user with one SMTP mailbox on a loopback server (plain, no TLS)."""
    user = await runtime.accounts.create_user(
        user_name=email.split("@")[0].title(), login_id=email.split("@")[0]
    )
    mailbox = await runtime.mailboxes.create_mailbox(
        user.user_id,
        email=email,
        provider="smtp",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_security="plain",
        password=password,
        **fields,
    )
    return user, mailbox


async def make_due_now(runtime: Runtime, campaign_id: str | None = None) -> None:
    """Arrangement for tests of sending rather than planning: every record (of one campaign,
    or all) becomes due a second ago by the runtime's clock."""
    statement = "UPDATE email_tracking SET scheduled_at = :now"
    params: dict[str, Any] = {"now": runtime.clock() - timedelta(seconds=1)}
    if campaign_id is not None:
        statement += " WHERE campaign_id = :campaign"
        params["campaign"] = campaign_id
    async with runtime.store.engine.begin() as connection:  # type: ignore[attr-defined]
        await connection.execute(text(statement), params)


async def bench_campaign(runtime: Runtime, **campaign_fields: Any) -> tuple[User, Mailbox, Any]:
    """A user, an SMTP mailbox with a high daily limit, and a campaign (for benchmarks)."""
    user = await runtime.accounts.create_user(user_name="Bench", login_id="bench")
    mailbox = await runtime.mailboxes.create_mailbox(
        user.user_id,
        email="bench@acme.com",
        provider="smtp",
        smtp_host="smtp.acme.com",
        password="pw",
        daily_limit=10_000,
    )
    values: dict[str, Any] = {
        "campaign_name": "Bench",
        "subject": "Hi",
        "message": "Hello",
        "duration": 24,
        "start_time": runtime.clock(),
    } | campaign_fields
    campaign = await runtime.campaigns.create_campaign(
        user.user_id, mailbox_id=mailbox.mailbox_id, **values
    )
    return user, mailbox, campaign


def _site_settings(directory: Path, public_base_url: str) -> Any:
    from mailramp.config import Settings

    return Settings(
        database_url=f"sqlite:///{directory / 'mailramp.db'}",
        encryption_key_file=directory / "mailramp.key",
        public_base_url=public_base_url,
        allow_private_hosts=True,
    )


def inbox_receives(directory: Path, public_base_url: str, raw: bytes, *, about: str) -> str:
    """For a `mailramp serve` site whose files are in `directory`: the inbox poller reads
    `raw` from the inbox of the mailbox that sent the message `about` (a Message-ID), as
    if it had just arrived there; returns the kind it was recorded as."""
    from mailramp.runtime import open_runtime
    from tests.support.loops import run_blocking

    async def receive() -> str:
        runtime = await open_runtime(_site_settings(directory, public_base_url))
        try:
            [record] = await runtime.store.find_tracking_by_message_ids([about])
            mailbox = await runtime.mailboxes.get_mailbox(record.user_id, record.mailbox_id)
            return (await runtime.inbox_poller().process(mailbox, raw)).value
        finally:
            await runtime.close()

    return run_blocking(receive())


def send_everything_now(directory: Path, public_base_url: str) -> None:
    """For a `mailramp serve` site whose files are in `directory`: make every record due,
    run worker passes on its database until nothing is left — every step of every
    sequence — then date the sends a minute back (so a click right after is not "too fast"
    for a person)."""
    from mailramp.runtime import open_runtime
    from tests.support.loops import run_blocking

    settings = _site_settings(directory, public_base_url)

    async def send() -> None:
        runtime = await open_runtime(settings)
        try:
            worker = runtime.worker()
            while True:  # a sent email makes the person's next step due: send that too
                await make_due_now(runtime)
                claimed = 0
                while passed := await worker.tick():
                    claimed += passed
                if not claimed:
                    break
            await worker.close()
            async with runtime.store.engine.begin() as connection:  # type: ignore[attr-defined]
                await connection.execute(
                    text("UPDATE email_tracking SET sent_at = :t WHERE sent_at IS NOT NULL"),
                    {"t": runtime.clock() - timedelta(minutes=1)},
                )
        finally:
            await runtime.close()

    run_blocking(send())


def settle_everything_now(directory: Path, public_base_url: str) -> int:
    """For a `mailramp serve` site whose files are in `directory`: decide every open and
    click so far, as a worker does once their settling window has passed."""
    from tests.support.loops import run_blocking
    from tests.support.settling import settle_now

    return run_blocking(settle_now(_site_settings(directory, public_base_url)))


async def reply_arrives(
    settings: Any, user_id: str, mailbox_id: str, campaign_id: str, reply: str
) -> str:
    """On a server's database (its settings): the campaign's first email is sent — marked
    so without a mail server — and `reply` (with `{ours}` standing for that email's
    Message-ID) arrives in the mailbox's inbox; what the poller made of it."""
    from mailramp.runtime import open_runtime
    from mailramp.sending.models import Outcome, SendResult
    from mailramp.sending.repository import Lease

    runtime = await open_runtime(settings)
    try:
        await make_due_now(runtime, campaign_id)
        now = runtime.clock()
        await runtime.store.run_lifecycle(now=now)  # a campaign whose start came: active
        lease = Lease("test", now, now + timedelta(minutes=1))
        record = (await runtime.store.claim_due(lease, limit=1))[0]
        ours = f"<{record.id}@acme.com>"
        await runtime.store.start_sending(lease, {record.id: ours})
        sent = SendResult(
            record.id, campaign_id, record.user_id, record.recipient_email, Outcome.SENT
        )
        await runtime.store.record_results([sent], now=now)
        mailbox = await runtime.mailboxes.get_mailbox(user_id, mailbox_id)
        raw = reply.replace("{ours}", ours).encode()
        return (await runtime.inbox_poller().process(mailbox, raw)).value
    finally:
        await runtime.close()


async def message_arrives(settings: Any, user_id: str, mailbox_id: str, raw: bytes) -> str:
    """On a server's database: `raw` arrives in the mailbox's inbox; what the poller made
    of it."""
    from mailramp.runtime import open_runtime

    runtime = await open_runtime(settings)
    try:
        mailbox = await runtime.mailboxes.get_mailbox(user_id, mailbox_id)
        return (await runtime.inbox_poller().process(mailbox, raw)).value
    finally:
        await runtime.close()
