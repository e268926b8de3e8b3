"""A world for sending tests: services on a fresh database with an injected clock, a real
SMTP server on loopback, and SMTP mailboxes pointed at it."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from mailramp.accounts.models import User
from mailramp.campaigns.models import Campaign
from mailramp.kit.secrets import SecretBox
from mailramp.mailboxes.models import NO_GAP, Mailbox, SendGap
from mailramp.providers.registry import DefaultProviders
from mailramp.runtime import Services
from mailramp.sending.models import ImportReport
from mailramp.sending.worker import SendingWorker, WorkerSettings
from mailramp.storage.mongo import MongoStore
from mailramp.storage.mongo.codec import decode
from mailramp.storage.sql import SqlStore, tables
from mailramp.tracking.links import TrackingLinks
from tests.conftest import services_on
from tests.support.clock import MONDAY_MORNING, FakeClock
from tests.support.smtp import SmtpServer

START = MONDAY_MORNING
SENDERS = itertools.count(1)  # one login id per sender a test signs up


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(accounts={"ann@acme.com": "smtp-password"}).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class World(Services):
    """The services (as the app wires them) and the SMTP server their mailboxes use."""

    smtp: SmtpServer

    def worker(
        self, *, tracking: TrackingLinks | None = None, **settings: float | SendGap
    ) -> SendingWorker:
        """A worker on the world's store and clock, without a pause between two sends of a
        mailbox unless `send_gap` says; with `tracking`, its emails carry tracking links."""
        values = {"retry_base_seconds": 60.0, "lease_seconds": 120.0, "send_gap": NO_GAP}
        values |= settings
        return SendingWorker(
            self.store,
            self.mailboxes,
            DefaultProviders(allow_private_hosts=True),
            settings=WorkerSettings(**values),  # type: ignore[arg-type]
            clock=self.clock,
            tracking=tracking,
        )

    async def sender(self, **mailbox_fields: object) -> tuple[User, Mailbox]:
        user = await self.accounts.create_user(user_name="Ann", login_id=f"ann{next(SENDERS)}")
        fields: dict[str, object] = {
            "email": "ann@acme.com",
            "provider": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": self.smtp.port,
            "smtp_security": "plain",
            "password": "smtp-password",
            "display_name": "Ann from Acme",
            "daily_limit": 500,
        } | mailbox_fields
        mailbox = await self.mailboxes.create_mailbox(user.user_id, **fields)
        return user, mailbox

    async def campaign(
        self, user: User, mailbox: Mailbox, csv_text: str, **fields: object
    ) -> tuple[Campaign, ImportReport]:
        values: dict[str, object] = {
            "mailbox_id": mailbox.mailbox_id,
            "campaign_name": "Spring outreach",
            "subject": "Hello {{first_name|there}}",
            "message": "Hi {{first_name|there}},\n\nA note from Acme.\n",
            "duration": 2,
            "start_time": self.clock.now,
        } | fields
        campaign = await self.campaigns.create_campaign(user.user_id, **values)
        report = await self.sending.import_recipients(
            user.user_id, campaign.campaign_id, io.BytesIO(csv_text.encode())
        )
        return campaign, report

    async def make_due(
        self, *emails: str, at: datetime | None = None, later: timedelta | None = None
    ) -> None:
        """Arrangement: these recipients' emails are due now (or since `at`); with `later`,
        everyone else's are planned that much later."""
        now = self.clock()
        column = tables.tracking.c.recipient_email
        moves = [(at or now - timedelta(seconds=1), column.in_(emails))]
        if later is not None:
            moves.append((now + later, column.not_in(emails)))
        async with self.store.engine.begin() as connection:  # type: ignore[attr-defined]
            for moment, where in moves:
                await connection.execute(
                    update(tables.tracking).where(where).values(scheduled_at=moment)
                )

    async def send_first(self, *emails: str) -> None:
        """Arrangement: these recipients are due now and sent by a worker pass; everyone
        else is planned a day later (still waiting)."""
        await self.make_due(*emails, later=timedelta(days=1))
        worker = self.worker()
        while await worker.tick():
            pass
        await worker.close()

    async def run(self, worker: SendingWorker, *, until: datetime, step_minutes: float = 5) -> None:
        """Let time pass in steps up to just before `until`, the worker doing its passes at
        each step (as a polling worker would, only coarser) and at each moment an email
        falls due within a step (as a polling worker would be there, on time: a step's
        lateness must not push a sequence's last email past the campaign's end)."""
        last = until - timedelta(milliseconds=1)
        while True:
            while await worker.tick():
                pass
            if self.clock.now >= last:
                return
            following = self.clock.now + timedelta(minutes=step_minutes)
            due = await self._next_due()
            if due is not None and self.clock.now < due < following:
                following = due
            self.clock.now = min(following, last)

    async def _next_due(self) -> datetime | None:
        """The earliest moment a pending email is scheduled for, after now."""
        if isinstance(self.store, MongoStore):
            cursor = (
                self.store.database["email_tracking"]
                .find({"status": "pending", "scheduled_at": {"$gt": self.clock.now}})
                .sort("scheduled_at", 1)
                .limit(1)
            )
            return next(iter([decode(d["scheduled_at"]) async for d in cursor]), None)
        tracking = tables.tracking
        async with self.store.engine.begin() as connection:  # type: ignore[attr-defined]
            return await connection.scalar(
                select(func.min(tracking.c.scheduled_at)).where(
                    tracking.c.status == "pending", tracking.c.scheduled_at > self.clock.now
                )
            )


@pytest.fixture
def world(store: SqlStore, secret_box: SecretBox, smtp_server: SmtpServer) -> World:
    services = services_on(store, secret_box, FakeClock(START))
    return World(**{f.name: getattr(services, f.name) for f in fields(Services)}, smtp=smtp_server)
