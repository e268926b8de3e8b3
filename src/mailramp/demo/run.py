"""The demo, start to end: a demo user and two mailboxes, the local servers, a warm-up day
of the two mailboxes played in seconds (demo/warmup.py), the web app with its worker and
inbox poller, a 3-step campaign (a first email and two follow-ups that
stop when someone answers) from both mailboxes compressed into a couple of minutes, the
simulated people, live progress, and the final numbers read back from the database."""

from __future__ import annotations

import asyncio
import io
import random
import secrets
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from mailramp.accounts.models import User
from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.config import Settings
from mailramp.demo.people import Person, Simulation, audience, csv_file
from mailramp.demo.servers import DemoInbox, RecipientServers
from mailramp.demo.warmup import WarmupDay, play_warmup_day
from mailramp.errors import ConfigurationError, NotFoundError
from mailramp.mailboxes.models import DEMO_DOMAIN, Mailbox
from mailramp.metrics.figures import Figure
from mailramp.metrics.models import CampaignMetrics
from mailramp.runtime import Runtime, open_runtime
from mailramp.sending.models import ImportReport

DEMO_LOGIN = "demo"
DEMO_MAILBOX = f"outreach@{DEMO_DOMAIN}"
DEMO_MAILBOXES = (DEMO_MAILBOX, f"hello@{DEMO_DOMAIN}")
"""The campaign sends from both: each person gets their whole sequence from one."""
STEP_SECONDS = 26
"""Each follow-up goes this long after the step before: longer than a simulated person
takes to answer and the inbox poller to see it, so an answer stops the next step."""
FOLLOW_UPS = (
    {"message": "<p>Hi {{first_name|there}}, did this reach you? Happy to send a short video "
     "instead.</p>"},
    {"subject": "Last note, {{first_name|there}}",
     "message": "<p>I will stop here. If outreach is on your list this quarter, "
     '<a href="https://mailramp-demo.example/tour">the tour</a> is two minutes.</p>'},
)  # fmt: skip
SUBJECT = "Quick question, {{first_name|there}}"
MESSAGE = (
    "<p>Hi {{first_name|there}},</p>\n"
    "<p>Teams like {{company|yours}} use mailramp to run outreach from their own servers. "
    'Would a <a href="https://mailramp-demo.example/tour">two-minute tour</a> help?</p>\n'
    "<p>Best,<br>The demo team</p>"
)
SETTLE_SECONDS = 30  # after the last reaction: time for the inbox poller to see replies


@dataclass(frozen=True)
class DemoOptions:
    """What `mailramp demo` was asked for."""

    recipients: int = 300
    minutes: float = 1.0
    host: str = "127.0.0.1"
    port: int = 8000
    seed: int = 2026


@dataclass
class Progress:
    """A snapshot for the live progress line."""

    elapsed: float
    total: int
    recipients: dict[str, int]
    """The campaign's emails by state (three per person: one per step)."""
    metrics: CampaignMetrics
    final: bool = False  # the last line: the same numbers as the summary that follows


@dataclass
class DemoResult:
    """What the demo did and what mailramp recorded."""

    dashboard_url: str
    inbox_url: str
    login: str
    password: str
    campaign_id: str
    import_report: ImportReport
    recipients: dict[str, int]
    metrics: CampaignMetrics
    figures: list[Figure]  # the metrics as the campaign page shows them
    warmup: WarmupDay
    steps_sent: list[int] = field(default_factory=list)  # emails sent per step, in order
    simulated: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        # As the web server binds: connections of an earlier run in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


async def _demo_user(runtime: Runtime, password: str) -> User:
    try:
        user = await runtime.accounts.get_user_by_login_id(DEMO_LOGIN)
    except NotFoundError:
        return await runtime.accounts.create_user(
            user_name="Demo User", login_id=DEMO_LOGIN, password=password
        )
    return await runtime.accounts.update_user(user.user_id, password=password)


async def _demo_mailbox(
    runtime: Runtime,
    user: User,
    servers: RecipientServers,
    inbox: DemoInbox,
    password: str,
    address: str,
) -> Mailbox:
    ports = {
        "smtp_host": "127.0.0.1",
        "smtp_port": servers.port,
        "smtp_security": "plain",
        "imap_host": "127.0.0.1",
        "imap_port": inbox.port,
        "imap_security": "plain",
        "password": password,
        "daily_limit": 10_000,
        # The demo's senders play mailboxes that have been sending for months.
        "already_warm": True,
    }
    for mailbox in await runtime.mailboxes.list_mailboxes(user.user_id):
        if mailbox.email == address:
            await runtime.mailboxes.update_mailbox(user.user_id, mailbox.mailbox_id, **ports)
            return await runtime.mailboxes.activate(user.user_id, mailbox.mailbox_id)
    name = "Demo Outreach" if address == DEMO_MAILBOX else "Demo Hello"
    return await runtime.mailboxes.create_mailbox(
        user.user_id, email=address, provider="smtp", display_name=name, **ports
    )


async def _snapshot(
    runtime: Runtime, campaign: Campaign
) -> tuple[Campaign, dict[str, int], CampaignMetrics]:
    current = await runtime.campaigns.get_campaign(campaign.user_id, campaign.campaign_id)
    counts = await runtime.sending.status_counts(campaign.user_id, campaign.campaign_id)
    metrics = await runtime.metrics.get_campaign_metrics(
        campaign.campaign_id, user_id=campaign.user_id
    )
    return current, counts, metrics


def _not_yet_recorded(metrics: CampaignMetrics, done: Counter[str], people: int) -> list[str]:
    """The simulated reactions the counters do not show yet (replies and bounce reports
    arrive through the inbox poller, a few seconds after they were sent)."""
    # Counted per person on both sides: a person who answers two steps counts once.
    pairs = [
        ("replies", metrics.total_replied, done["replies"]),
        ("auto-replies", metrics.total_auto_replied, done["auto_replies"]),
        ("unsubscribes", metrics.total_unsubscribed, done["unsubscribes"]),
        ("opens by people", metrics.total_human_opened, done["human_opens"]),
        ("clicks by people", metrics.total_human_clicks, done["human_clicks"]),
        (
            "emails handled",
            done["received"] + metrics.total_bounced - done["late_bounces"],
            people,
        ),
    ]
    return [f"{name}: {seen} recorded of {wanted}" for name, seen, wanted in pairs if seen < wanted]


async def run_demo(
    settings: Settings,
    options: DemoOptions,
    *,
    on_start: Callable[[str, str, str], None] = lambda url, login, password: None,
    on_progress: Callable[[Progress], None] = lambda progress: None,
) -> DemoResult:
    """Run the whole demo on `settings`' database; the data stays for `mailramp serve`."""
    import uvicorn

    from mailramp.web.app import create_app

    if not _port_is_free(options.host, options.port):
        raise ConfigurationError(
            f"port {options.port} is in use (is `mailramp serve` running?): stop it, "
            "or run the demo with --port"
        )
    shown_host = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host  # noqa: S104
    base = f"http://{shown_host}:{options.port}"
    demo_settings = settings.model_copy(
        update={
            "allow_private_hosts": True,  # the demo's servers are on loopback
            "public_base_url": base,
            "run_worker": True,
            "worker_poll_seconds": 0.25,
            # Two minutes, not a working day: no pause between two emails of a mailbox.
            "send_gap_min_seconds": 0,
            "send_gap_max_seconds": 0,
            "inbox_poll_interval_seconds": 2.0,
        }
    )
    loop = asyncio.get_running_loop()
    password, mail_password = secrets.token_urlsafe(9), secrets.token_urlsafe(16)
    people = audience(options.recipients, seed=options.seed)
    inboxes = {address: DemoInbox(address, mail_password) for address in DEMO_MAILBOXES}
    logins = dict.fromkeys(DEMO_MAILBOXES, mail_password)
    servers = RecipientServers(logins, loop, local=inboxes).start()
    server: uvicorn.Server | None = None
    serving: asyncio.Task[Any] | None = None
    runtime = await open_runtime(demo_settings)
    try:
        for inbox in inboxes.values():
            await asyncio.to_thread(inbox.start)
        user = await _demo_user(runtime, password)
        mailboxes = [
            await _demo_mailbox(runtime, user, servers, inboxes[address], mail_password, address)
            for address in DEMO_MAILBOXES
        ]
        warmup = await play_warmup_day(runtime, user, mailboxes, base_url=base)
        warmup.filed_in_junk = servers.filed_in_junk
        delay = STEP_SECONDS / 3600
        # The first emails go out over `minutes`; the follow-ups' time is added on top.
        window = options.minutes * 60 + len(FOLLOW_UPS) * STEP_SECONDS + 10
        campaign = await runtime.campaigns.create_campaign(
            user.user_id,
            mailbox_ids=[mailbox.mailbox_id for mailbox in mailboxes],
            campaign_name=f"Demo · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            subject=SUBJECT,
            message=MESSAGE,
            message_format="html",
            start_time=datetime.now(UTC) + timedelta(seconds=2),
            duration=window / 3600,
            campaign_steps=[{"delay_days": 0, "delay_hours": delay, **f} for f in FOLLOW_UPS],
            # The demo's made-up list bounces about 4.5 % on purpose, to show bounces: its
            # bounce brake is set above that, so the demo is not paused half-way.
            brake_rules={"bounce_rate_percent": 10.0},
        )
        # Addresses that unsubscribed or bounced in an earlier demo are suppressed now.
        suppressed = await runtime.suppression.suppressed_among(user.id, [p.email for p in people])
        audience_left = [p for p in people if p.email not in suppressed]
        report = await runtime.sending.import_recipients(
            user.user_id, campaign.campaign_id, io.BytesIO(csv_file(people))
        )
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(demo_settings),
                host=options.host,
                port=options.port,
                log_level="warning",
            )
        )
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                await serving  # raises what stopped it
                raise ConfigurationError(f"the web server could not start on {base}")
            await asyncio.sleep(0.05)
        on_start(f"{base}/campaigns/{campaign.campaign_id}", DEMO_LOGIN, password)
        began = asyncio.get_running_loop().time()
        simulated, problems = await _play(
            runtime, campaign, audience_left, servers, inboxes, options, on_progress
        )
    finally:
        if server is not None and serving is not None:
            server.should_exit = True
            await asyncio.gather(serving, return_exceptions=True)
        servers.stop()
        for inbox in inboxes.values():
            inbox.stop()
        try:
            await _park_mailbox(runtime)
            final = await _snapshot(runtime, campaign) if "campaign" in locals() else None
            funnel = await _funnel(runtime, campaign) if "campaign" in locals() else []
        finally:
            await runtime.close()
    assert final is not None
    current, counts, metrics = final
    elapsed = asyncio.get_running_loop().time() - began
    on_progress(Progress(elapsed, current.total_recipients, counts, metrics, final=True))
    return DemoResult(
        dashboard_url=f"{base}/campaigns/{campaign.campaign_id}",
        inbox_url=f"{base}/inbox",
        login=DEMO_LOGIN,
        password=password,
        campaign_id=campaign.campaign_id,
        import_report=report,
        recipients=counts,
        metrics=metrics,
        figures=current.figures(metrics),
        warmup=warmup,
        steps_sent=funnel,
        simulated=simulated,
        problems=problems,
    )


async def _funnel(runtime: Runtime, campaign: Campaign) -> list[int]:
    """How many emails each step sent, in order (the campaign page's per-step funnel)."""
    steps = await runtime.campaigns.step_figures(campaign.user_id, campaign.campaign_id)
    return [next(f.count for f in step.figures if f.key == "sent") for step in steps]


async def _play(
    runtime: Runtime,
    campaign: Campaign,
    people: list[Person],
    servers: RecipientServers,
    inboxes: dict[str, DemoInbox],
    options: DemoOptions,
    on_progress: Callable[[Progress], None],
) -> tuple[dict[str, int], list[str]]:
    started = asyncio.get_running_loop().time()
    deadline = started + options.minutes * 60 + len(FOLLOW_UPS) * STEP_SECONDS + 180
    async with httpx.AsyncClient(timeout=10) as http:
        simulation = Simulation(
            {p.email: p for p in people},
            inboxes,
            http,
            random.Random(options.seed),  # noqa: S311 - a repeatable demo
        )

        async def deliver() -> None:
            while True:
                simulation.react(await servers.delivered.get())

        delivering = asyncio.create_task(deliver())
        settled_at: float | None = None
        try:
            while True:
                now = asyncio.get_running_loop().time()
                current, counts, metrics = await _snapshot(runtime, campaign)
                on_progress(Progress(now - started, len(people), counts, metrics))
                finished = current.status in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED)
                idle = finished and not simulation.tasks and servers.delivered.empty()
                if idle and settled_at is None:
                    settled_at = now
                missing = _not_yet_recorded(metrics, simulation.done, len(people))
                if idle and not missing:
                    break
                if now > deadline or (settled_at is not None and now - settled_at > SETTLE_SECONDS):
                    simulation.problems.append(
                        "stopped waiting; not recorded in time: " + "; ".join(missing)
                    )
                    break
                await asyncio.sleep(1.0)
        finally:
            delivering.cancel()
            await asyncio.gather(delivering, return_exceptions=True)
            await simulation.settle()
    return dict(simulation.done), simulation.problems


async def _park_mailbox(runtime: Runtime) -> None:
    """Leave the demo mailboxes inactive: their servers stop with the demo, and `mailramp
    serve` should not try to reach them."""
    try:
        user = await runtime.accounts.get_user_by_login_id(DEMO_LOGIN)
    except NotFoundError:
        return
    for mailbox in await runtime.mailboxes.list_mailboxes(user.user_id):
        if mailbox.email in DEMO_MAILBOXES:
            await runtime.mailboxes.set_status(
                user.user_id,
                mailbox.mailbox_id,
                "inactive",
                reason="demo mailbox: its local servers stop when `mailramp demo` ends",
            )
