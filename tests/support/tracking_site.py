"""A mailramp that has really sent tracked email, served over HTTP: for tests that follow
the links in those emails the way recipients, mail clients and security scanners do.

`tracking_site()` creates senders (each a user with an SMTP mailbox and an HTML campaign),
sends every recipient's email through the real worker to an SMTP server on loopback, keeps
the messages as received, then runs `mailramp serve` (no worker) on the same database.
`state()` reads what those requests may change — events, the tracking records' event
times, counters and suppressions — straight from the database, so a test can show that a
request changed nothing.
"""

from __future__ import annotations

import asyncio
import io
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import text

from mailramp.config import Settings
from mailramp.kit.signing import TokenSigner
from mailramp.runtime import Runtime, open_runtime
from mailramp.storage.sql import SqlStore
from mailramp.tracking.models import EVENT_TIMESTAMPS
from mailramp.tracking.repository import RecipientQuery
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving
from tests.support.scenario import make_due_now, smtp_sender
from tests.support.settling import settle_now
from tests.support.smtp import SmtpServer

URL = re.compile(r"""https?://[^\s"'<>)]+""")
EVENT_TIMES = EVENT_TIMESTAMPS  # the columns a snapshot reads, in table order
COUNTERS = (
    "total_sent",
    "total_delivered",
    "total_opened",
    "total_clicks",
    "total_bounced",
    "total_replied",
    "total_unsubscribed",
    "total_human_opened",
    "total_human_clicks",
)


@dataclass(frozen=True)
class SenderSpec:
    """One user, their mailbox and one HTML campaign to some recipients."""

    login: str
    links: tuple[str, ...]
    recipients: tuple[str, ...]


@dataclass
class Sent:
    """One email as the SMTP server received it, and what it links to."""

    login: str
    user_id: str
    campaign_id: str
    record_id: str
    recipient: str
    message: EmailMessage

    def html(self) -> str:
        body = self.message.get_body(preferencelist=("html",))
        assert body is not None
        return str(body.get_content())

    def plain(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        assert body is not None
        return str(body.get_content())

    @property
    def open_url(self) -> str:
        found = re.search(r'<img src="([^"]+/t/o/[^"]+)"', self.html())
        assert found is not None
        return found.group(1)

    @property
    def click_urls(self) -> list[str]:
        return re.findall(r"""href=["']([^"']+/t/c/[^"']+)["']""", self.html())

    @property
    def list_unsubscribe(self) -> str:
        # A long header may be folded onto its next line (RFC 5322 FWS).
        value = " ".join(str(self.message["List-Unsubscribe"]).split())
        return value.strip("<>")

    def every_url(self) -> list[str]:
        """Every http(s) URL anywhere in the message — headers, text and HTML parts — as a
        link scanner extracts them, in order of first appearance."""
        texts = [f"{name}: {' '.join(str(value).split())}" for name, value in self.message.items()]
        texts += [self.html(), self.plain()]
        seen: dict[str, None] = {}
        for chunk in texts:
            for url in URL.findall(chunk):
                seen.setdefault(url.rstrip(".,;"), None)
        return list(seen)


@dataclass
class TrackingSite:
    """The served site and what was sent."""

    base: str
    settings: Settings
    sent: dict[str, Sent]
    """By recipient address (unique across senders)."""
    campaigns: dict[str, str] = field(default_factory=dict)
    """campaign_id by sender login."""

    def run(self, call: Any) -> Any:
        """`call(runtime)` on a runtime of this site, from synchronous code."""

        async def go() -> Any:
            runtime = await open_runtime(self.settings)
            try:
                return await call(runtime)
            finally:
                await runtime.close()

        return asyncio.run(go())

    def settle(self) -> int:
        """Decide the opens and clicks so far, as a worker does once they settle."""
        return asyncio.run(settle_now(self.settings))

    def signer(self) -> TokenSigner:
        """The signer the server uses (its keys), to make tokens a test needs."""
        return self.run(_signer)  # type: ignore[no-any-return]

    def state(self) -> dict[str, Any]:
        """What tracking requests can change, read from the database."""
        return asyncio.run(read_state(self.settings.database_url))

    def additions(self) -> tuple[int, int, int]:
        """(events, suppressions, opened answers) — every tracking request that is accepted
        adds to one of them. A quick read for SQLite sites, for checks after every request."""
        url = self.settings.database_url
        assert url.startswith("sqlite:///")
        path = url.removeprefix("sqlite:///")
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            events = db.execute("SELECT count(*) FROM email_events").fetchone()[0]
            suppressions = db.execute("SELECT count(*) FROM suppression_list").fetchone()[0]
            opened = db.execute(
                "SELECT count(*) FROM conversation_messages WHERE opened_at IS NOT NULL"
            ).fetchone()[0]
        return int(events), int(suppressions), int(opened)

    def touch_sent_at(self, recipient: str, moment: datetime) -> None:
        """Arrangement: set when one message was sent (the classifier reads it)."""

        async def update(runtime: Runtime) -> None:
            async with runtime.store.engine.begin() as connection:  # type: ignore[attr-defined]
                await connection.execute(
                    text("UPDATE email_tracking SET sent_at = :then WHERE _id = :id"),
                    {"then": moment, "id": self.sent[recipient].record_id},
                )

        self.run(update)


async def _signer(runtime: Runtime) -> TokenSigner:
    return runtime.tracking_links.signer


async def read_state(database_url: str) -> dict[str, Any]:
    """Events (type, machine flag, record), every record's event times, every campaign's
    counters, and the suppression list."""
    store = SqlStore.from_url(database_url)
    try:
        async with store.engine.connect() as connection:
            events = (
                await connection.execute(
                    text("SELECT type, machine, machine_reason, record_id FROM email_events")
                )
            ).all()
            records = (
                await connection.execute(
                    text(f"SELECT _id, status, {', '.join(EVENT_TIMES)} FROM email_tracking")
                )
            ).all()
            counters = (
                await connection.execute(
                    text(f"SELECT campaign_id, {', '.join(COUNTERS)} FROM campaign_matrix")
                )
            ).all()
            suppressions = (
                await connection.execute(
                    text("SELECT user_id, email, reason FROM suppression_list")
                )
            ).all()
    finally:
        await store.close()
    return {
        "events": sorted(
            (str(kind), str(bool(machine)), str(reason), str(record))
            for kind, machine, reason, record in events
        ),
        "records": {row[0]: tuple(row[1:]) for row in records},
        "counters": {row[0]: dict(zip(COUNTERS, row[1:], strict=True)) for row in counters},
        "suppressions": sorted(tuple(row) for row in suppressions),
    }


async def send_all(settings: Settings, smtp: SmtpServer, senders: list[SenderSpec]) -> Any:
    runtime = await open_runtime(settings)
    made: dict[str, tuple[str, str]] = {}
    try:
        for spec in senders:
            user, mailbox = await smtp_sender(
                runtime, email=f"{spec.login}@acme.com", smtp_port=smtp.port
            )
            anchors = "".join(
                f'<p><a href="{link}">link {n}</a></p>' for n, link in enumerate(spec.links)
            )
            campaign = await runtime.campaigns.create_campaign(
                user.user_id,
                mailbox_id=mailbox.mailbox_id,
                campaign_name=f"News from {spec.login}",
                subject="Hi {{first_name}}",
                message=f"<html><body><p>Hi {{{{first_name}}}},</p>{anchors}</body></html>",
                message_format="html",
                duration=4,
                start_time=runtime.clock() - timedelta(minutes=5),
            )
            rows = "email,first_name\n" + "".join(
                f"{address},{address.split('@')[0].title()}\n" for address in spec.recipients
            )
            await runtime.sending.import_recipients(
                user.user_id, campaign.campaign_id, io.BytesIO(rows.encode())
            )
            made[spec.login] = (user.user_id, campaign.campaign_id)
        await make_due_now(runtime)
        worker = runtime.worker()
        while await worker.tick():
            pass
        await worker.close()
        records = {}
        for login, (user_id, campaign_id) in made.items():
            page = await runtime.store.list_tracking(
                user_id, RecipientQuery(campaign_id, limit=1000)
            )
            for record in page.items:
                records[record.recipient_email] = (login, user_id, campaign_id, record.id)
        return made, records
    finally:
        await runtime.close()


@contextmanager
def tracking_site(
    directory: Path, database_url: str, senders: list[SenderSpec]
) -> Iterator[TrackingSite]:
    """Send every sender's campaign, then serve the site until the block ends."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=database_url,
        encryption_key_file=directory / "mailramp.key",
        public_base_url=base,
        allow_private_hosts=True,
    )
    smtp = SmtpServer({f"{spec.login}@acme.com": "pw" for spec in senders}).start()
    try:
        made, records = asyncio.run(send_all(settings, smtp, senders))
        received = [received.message for received in smtp.inbox.messages]
    finally:
        smtp.stop()
    sent = {}
    for message in received:
        login, user_id, campaign_id, record_id = records[str(message["To"])]
        sent[str(message["To"])] = Sent(
            login, user_id, campaign_id, record_id, str(message["To"]), message
        )
    assert len(sent) == sum(len(spec.recipients) for spec in senders)
    environment = clean_environment(
        MAILRAMP_PUBLIC_BASE_URL=base,
        MAILRAMP_RUN_WORKER="false",
        MAILRAMP_DATABASE_URL=database_url,
    )
    with serving(port, cwd=directory, env=environment):
        yield TrackingSite(
            base, settings, sent, {login: campaign for login, (_, campaign) in made.items()}
        )
