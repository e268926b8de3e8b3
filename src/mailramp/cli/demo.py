"""`mailramp demo`: see the whole product work on this machine in about a minute."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from mailramp.cli.campaigns import figures_table
from mailramp.cli.common import (
    EXIT_INTERRUPTED,
    JsonOption,
    emit,
    fail,
    load_settings,
)
from mailramp.errors import ConfigurationError, MailrampError

if TYPE_CHECKING:
    from mailramp.demo.warmup import WarmupDay


def demo(
    recipients: Annotated[
        int, typer.Option(min=1, max=5000, help="How many simulated recipients.")
    ] = 300,
    minutes: Annotated[
        float, typer.Option(min=0.1, max=60, help="The campaign window, in minutes.")
    ] = 1.0,
    port: Annotated[
        int | None,
        typer.Option(help="Port of the dashboard during the demo (default MAILRAMP_PORT, 8000)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated people (repeatable).")] = 2026,
    as_json: JsonOption = False,
) -> None:
    """Run a demo campaign end to end on the configured database (the embedded SQLite file by
    default): a demo user and two mailboxes, local SMTP and IMAP servers playing the
    recipients, a warm-up day of the two mailboxes (a past business day played in seconds:
    warm-up emails to each other, some filed in Junk and moved out, answers in their
    threads), a 3-step campaign (a first email and two follow-ups half a minute apart that
    stop when someone answers) to a few hundred recipients from both mailboxes, its first
    emails compressed into about a minute, simulated opens, clicks, replies, an
    out-of-office answer, bounces and an unsubscribe through the real tracking endpoints
    and inboxes. The dashboard is live while it runs; the data stays, so `mailramp serve`
    shows it afterwards with the demo login printed at the end.

    Example:

        mailramp demo                 # 300 recipients, first emails over one minute
        mailramp demo --recipients 50 --minutes 0.5 --json
    """
    try:
        from mailramp.demo.run import DemoOptions, Progress, run_demo
    except ConfigurationError as missing:  # a server install, without the demo's extras
        raise fail(missing) from None

    settings = load_settings()
    options = DemoOptions(
        recipients=recipients,
        minutes=minutes,
        host=settings.host,
        port=port or settings.port,
        seed=seed,
    )
    interactive = sys.stderr.isatty()

    def started(url: str, login: str, password: str) -> None:
        typer.echo(
            f"Demo running: watch it live at {url}  (sign in as {login} / {password})",
            err=True,
        )

    def progress(now: Progress) -> None:
        m = now.metrics
        emails = sum(now.recipients.get(state, 0) for state in ("sent", "bounced"))
        # People first, machines beside, as the dashboard and the summary show them.
        line = (
            f"[{now.elapsed:4.0f}s] {m.total_sent}/{now.total} people reached · "
            f"{emails} emails sent · "
            f"opened by people {m.total_human_opened} "
            f"(+{m.total_opened - m.total_human_opened} machines) · "
            f"clicked by people {m.total_human_clicks} "
            f"(+{m.total_clicks - m.total_human_clicks} machines) · "
            f"replied {m.total_replied} · bounced {m.total_bounced} · "
            f"unsubscribed {m.total_unsubscribed}"
        )
        if interactive:
            typer.echo("\r" + line.ljust(150), err=True, nl=False)
        elif now.final or int(now.elapsed) % 10 == 0:
            typer.echo(line, err=True)

    try:
        result = asyncio.run(run_demo(settings, options, on_start=started, on_progress=progress))
    except MailrampError as error:
        raise fail(error, as_json=as_json) from None
    except KeyboardInterrupt:
        raise typer.Exit(code=EXIT_INTERRUPTED) from None
    if interactive:
        typer.echo("", err=True)
    report = result.import_report
    lines = [
        *_warmup_lines(result.warmup),
        f"Demo campaign {result.campaign_id}",
        f"  import: {report.summary()}",
        "  emails: " + ", ".join(f"{k} {v}" for k, v in result.recipients.items() if v),
        "  sequence: "
        + " · ".join(f"step {n} sent {sent}" for n, sent in enumerate(result.steps_sent, 1)),
        *figures_table(result.figures),
        "  what the simulated people did: "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(result.simulated.items())),
        *[f"  problem: {problem}" for problem in result.problems],
        "",
        f"Dashboard: {result.dashboard_url}",
        f"  the replies are in the inbox, to read and answer: {result.inbox_url}",
        f"  start it again with `mailramp serve` and sign in as {result.login} / {result.password}",
    ]
    emit(
        as_json,
        {
            "campaign_id": result.campaign_id,
            "dashboard_url": result.dashboard_url,
            "inbox_url": result.inbox_url,
            "login": result.login,
            "password": result.password,
            "import": report,
            "recipients": result.recipients,
            "steps_sent": result.steps_sent,
            "warmup": result.warmup,
            "metrics": result.metrics,
            "simulated": result.simulated,
            "problems": result.problems,
        },
        lines,
    )


def _warmup_lines(day: WarmupDay) -> list[str]:
    found = day.found
    return [
        f"Warm-up day {day.day:%a %d %b %Y} (played in seconds, before the campaign)",
        f"  {day.sent} warm-up emails between the demo mailboxes, {day.failed} failed; the"
        f" demo's spam filter put {day.filed_in_junk} in Junk",
        f"  found: {found.get('inbox', 0)} in the inbox, {found.get('spam', 0)} in Junk (moved"
        f" to the inbox), {found.get('other', 0)} elsewhere; {day.replies_planned} answered"
        " in their threads",
        *[f"  health: {url}" for url in day.health_urls],
    ]
