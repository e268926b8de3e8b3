"""`mailramp campaign …`: create, import, steps, launch, pause, resume, cancel, stats,
export."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from mailramp.campaigns.models import SENDING_STATUSES, Campaign
from mailramp.campaigns.repository import PendingSchedule
from mailramp.campaigns.service import StepFigures
from mailramp.cli.common import (
    JsonOption,
    command_group,
    emit,
    find_campaign,
    find_mailbox,
    find_user,
    load_settings,
    progress_stream,
    run,
)
from mailramp.errors import ValidationError
from mailramp.metrics.figures import Figure
from mailramp.metrics.models import CampaignMetrics
from mailramp.runtime import Runtime
from mailramp.sending.importer import check_file
from mailramp.sending.models import ImportReport
from mailramp.tracking.models import EmailTracking

campaign_app = command_group("Campaigns: create, import, run, follow.")

CampaignId = Annotated[str, typer.Argument(help="The campaign's campaign_id (a UUID).")]


def _start(value: str | None) -> datetime:
    if value is None or value == "now":
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError("start", "is not an ISO 8601 time", value=value) from None
    if moment.tzinfo is None:
        raise ValidationError("start", "needs a UTC offset, e.g. 2026-12-01T09:00+01:00")
    return moment


async def _import(runtime: Runtime, campaign: Campaign, file: Path, size: int) -> ImportReport:
    with (
        file.open("rb") as stream,
        typer.progressbar(length=size, label="importing", file=progress_stream()) as bar,
    ):
        position = 0

        def advance(offset: int) -> None:
            nonlocal position
            bar.update(max(offset - position, 0))
            position = max(offset, position)

        return await runtime.sending.import_recipients(
            campaign.user_id, campaign.campaign_id, stream, on_progress=advance
        )


def _report_lines(report: ImportReport) -> list[str]:
    lines = [report.summary()]
    lines += [f"  row {bad.row}: {bad.value!r}: {bad.reason}" for bad in report.invalid[:20]]
    if report.invalid_count > 20:
        lines.append(f"  … and {report.invalid_count - 20} more invalid rows")
    return lines


@campaign_app.command("create")
def campaign_create(
    user: Annotated[str, typer.Option("--user", help="Owner: login or user _id.")],
    mailbox: Annotated[
        list[str],
        typer.Option(
            help="Sending mailbox: its email or _id. Repeat it to send from several (each "
            "person gets one email, from one of them; the first is the campaign's mailbox)."
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="Campaign name.")],
    subject: Annotated[str, typer.Option(help="Subject; merge tags like {{first_name}}.")],
    duration: Annotated[float, typer.Option(help="Window length in hours.")],
    message: Annotated[str | None, typer.Option(help="The message text.")] = None,
    message_file: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Read the message from a file."),
    ] = None,
    message_format: Annotated[str, typer.Option("--format", help="text or html.")] = "text",
    start: Annotated[
        str | None, typer.Option(help="ISO 8601 start with offset, or 'now' (default).")
    ] = None,
    recipients: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Import this CSV right away."),
    ] = None,
    steps_file: Annotated[
        Path | None,
        typer.Option(
            "--steps-file",
            exists=True,
            dir_okay=False,
            help="Follow-ups: a JSON list of {delay_days, delay_hours, subject, message, "
            "variants}; an empty subject sends it as a reply in the thread.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a campaign; sends are spread over [start, start + duration] within the
    mailbox's daily limit, every follow-up included.

    Example:

        mailramp campaign create --user ann@acme.com --mailbox ann@acme.com \\
            --name "December launch" --subject "Hi {{first_name|there}}" \\
            --message-file launch.txt --start 2026-12-01T09:00+01:00 --duration 48 \\
            --recipients people.csv
    """
    settings = load_settings()
    if (message is None) == (message_file is None):
        raise typer.BadParameter("give exactly one of --message and --message-file")
    body = message if message is not None else message_file.read_text()  # type: ignore[union-attr]
    size = recipients.stat().st_size if recipients else 0
    follow_ups = _steps_from(steps_file) if steps_file else []

    async def work(runtime: Runtime) -> tuple[Campaign, ImportReport | None]:
        owner = await find_user(runtime, user)
        senders = [await find_mailbox(runtime, owner, each) for each in mailbox]
        declared = 0
        if recipients:
            # All or nothing: a file the import would refuse creates no campaign, and the
            # recipients it holds are declared, so a campaign they would not fit is refused.
            with recipients.open("rb") as stream:
                texts = [subject, body, *_texts_of(follow_ups)]
                declared = check_file(stream, *texts).accepted
        campaign = await runtime.campaigns.create_campaign(
            owner.user_id,
            mailbox_ids=[sender.mailbox_id for sender in senders],
            campaign_name=name,
            subject=subject,
            message=body,
            message_format=message_format,
            start_time=_start(start),
            duration=duration,
            total_recipients=declared,
            campaign_steps=follow_ups,
        )
        report = await _import(runtime, campaign, recipients, size) if recipients else None
        return campaign, report

    campaign, report = run(settings, work, as_json=as_json)
    lines = [f"created campaign {campaign.campaign_id} ({campaign.status})"]
    lines += _report_lines(report) if report else []
    emit(as_json, {"campaign": campaign, "import": report}, lines)


def _steps_from(path: Path) -> list[dict[str, Any]]:
    """The follow-ups a JSON file lists; BadParameter naming the file and the problem."""
    try:
        steps = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise typer.BadParameter(f"{path} is not JSON: {error}") from None
    if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
        raise typer.BadParameter(f"{path} must hold a JSON list of steps ({{...}} each)")
    return steps


def _texts_of(steps: list[dict[str, Any]]) -> list[str]:
    """Every subject and message of these follow-ups and their variants (as given)."""
    wordings = [*steps, *(v for step in steps for v in step.get("variants") or [])]
    return [
        str(w.get(part) or "")
        for w in wordings
        if isinstance(w, dict)
        for part in ("subject", "message")
    ]


@campaign_app.command("steps")
def campaign_steps(campaign_id: CampaignId, as_json: JsonOption = False) -> None:
    """The campaign's sequence, step by step, with the figures of each step's emails (the
    per-step funnel).

    Example:

        mailramp campaign steps 6f1c… --json | jq '.[] | {position, sent: .figures[0].count}'
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> list[StepFigures]:
        campaign = await find_campaign(runtime, campaign_id)
        return await runtime.campaigns.step_figures(campaign.user_id, campaign.campaign_id)

    funnel = run(settings, work, as_json=as_json)
    lines = []
    for row in funnel:
        if row.follow_up is None:
            title = f"step {row.position}: first email"
        else:
            wording = row.follow_up.subject or "reply in the thread"
            title = f"step {row.position}: {row.follow_up.delay} later, {wording}"
        lines += [title, *figures_table(row.figures)]
    emit(as_json, [_step_json(row) for row in funnel], lines)


def _step_json(row: StepFigures) -> dict[str, Any]:
    follow_up = row.follow_up
    return {
        "position": row.position,
        "step": row.step,
        "delay_days": follow_up.delay_days if follow_up else 0,
        "delay_hours": follow_up.delay_hours if follow_up else 0.0,
        "subject": row.variants[0].variant.subject,
        "figures": row.figures,
        "variants": [{"letter": v.letter, "figures": v.figures} for v in row.variants],
    }


@campaign_app.command("set-steps")
def campaign_set_steps(
    campaign_id: CampaignId,
    steps_file: Annotated[
        Path,
        typer.Option(
            "--file",
            exists=True,
            dir_okay=False,
            help="The follow-ups after the change (JSON list): keep one by naming its "
            "`step`, leave one out to remove it, add one without `step`.",
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Change a campaign's follow-ups, before or while it runs; only emails not sent yet
    change.

    Example:

        mailramp campaign steps 6f1c… --json > now.json   # see the numbers
        mailramp campaign set-steps 6f1c… --file steps.json
    """
    settings = load_settings()
    follow_ups = _steps_from(steps_file)

    async def work(runtime: Runtime) -> Campaign:
        campaign = await find_campaign(runtime, campaign_id)
        return await runtime.sending.set_steps(
            campaign.user_id, campaign.campaign_id, campaign_steps=follow_ups
        )

    campaign = run(settings, work, as_json=as_json)
    numbers = ", ".join(str(step) for step in campaign.steps)
    emit(as_json, campaign, [f"campaign {campaign.campaign_id} now has steps {numbers}"])


@campaign_app.command("import")
def campaign_import(
    campaign_id: CampaignId,
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A CSV file.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Import recipients from a CSV file (a header row with an `email` column; other columns
    become merge tags). Bad rows are reported with their row number; a file that cannot be
    read as a whole is refused and nothing is imported.

    Example:

        mailramp campaign import 6f1c…  people.csv
    """
    settings = load_settings()
    size = file.stat().st_size

    async def work(runtime: Runtime) -> ImportReport:
        return await _import(runtime, await find_campaign(runtime, campaign_id), file, size)

    report = run(settings, work, as_json=as_json)
    emit(as_json, report, _report_lines(report))


# The status changes a campaign's state machine offers: name → (past tense, help).
STATUS_COMMANDS = {
    "launch": (
        "launched",
        "Start sending now: a scheduled campaign's window moves to begin now (same\n"
        "duration); a paused one resumes.",
    ),
    "pause": ("paused", "Stop sending until resumed (sends in flight finish)."),
    "resume": (
        "resumed",
        "Continue a paused campaign; what is left is spread over what is left of the\nwindow.",
    ),
    "cancel": ("cancelled", "Stop for good: recipients not yet sent are marked cancelled."),
}


def schedule_line(waiting: PendingSchedule, now: datetime) -> str:
    """When the waiting emails go out, for a terminal: the first (and how soon), the last,
    and how fast."""
    if waiting.first is None or waiting.last is None:
        return "no email waits to be sent"
    minutes = max(round((waiting.first - now).total_seconds() / 60), 0)
    soon = "now" if minutes == 0 else f"in {minutes} minute{'s' if minutes != 1 else ''}"
    line = f"{waiting.count} emails wait; the first at {_utc(waiting.first)} ({soon})"
    if waiting.count > 1:
        line += f", the last at {_utc(waiting.last)}, {waiting.pace()}"
    return line


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _status_command(name: str, verb: str) -> Callable[[str, bool], None]:
    def command(campaign_id: CampaignId, as_json: JsonOption = False) -> None:
        settings = load_settings()

        async def work(runtime: Runtime) -> tuple[Campaign, PendingSchedule, datetime]:
            campaign = await find_campaign(runtime, campaign_id)
            change = getattr(runtime.campaigns, name)
            changed: Campaign = await change(campaign.user_id, campaign.campaign_id)
            waiting = await runtime.campaigns.pending_schedule(changed.user_id, changed.campaign_id)
            return changed, waiting, runtime.clock()

        campaign, waiting, now = run(settings, work, as_json=as_json)
        text = f"{verb} {campaign.campaign_name}: now {campaign.status}"
        if campaign.status in SENDING_STATUSES:
            text += "; " + schedule_line(waiting, now)
        emit(as_json, campaign, text)

    return command


def _register_status_commands() -> None:
    for name, (verb, summary) in STATUS_COMMANDS.items():
        example = f"\n\nExample:\n\n    mailramp campaign {name} 6f1c…"
        campaign_app.command(name, help=summary + example)(_status_command(name, verb))


_register_status_commands()


# A person's commands: (service method, past tense, help).
RECIPIENT_COMMANDS = {
    "stop-recipient": (
        "stop",
        "stopped",
        "Stop one person: their email not sent yet is cancelled and nothing more is sent to them.",
    ),
    "mark-replied": (
        "mark_replied",
        "marked as replied",
        "Count a reply that came another way (a call, another address) as that person's reply.",
    ),
}

RecipientEmail = Annotated[str, typer.Argument(help="The person's email address.")]


def _recipient_command(method: str, done: str) -> Callable[[str, str, bool], None]:
    def command(
        campaign_id: CampaignId, email: RecipientEmail, as_json: JsonOption = False
    ) -> None:
        settings = load_settings()

        async def work(runtime: Runtime) -> EmailTracking:
            campaign = await find_campaign(runtime, campaign_id)
            user_id = campaign.user_id
            record = await runtime.tracking.find_recipient(user_id, campaign.campaign_id, email)
            change = getattr(runtime.tracking, method)
            changed: EmailTracking = await change(user_id, campaign.campaign_id, record.id)
            return changed

        record = run(settings, work, as_json=as_json)
        emit(as_json, record, f"{record.recipient_email} {done} (first email: {record.status})")

    return command


def _register_recipient_commands() -> None:
    for name, (method, done, summary) in RECIPIENT_COMMANDS.items():
        example = f"\n\nExample:\n\n    mailramp campaign {name} 6f1c… ann@example.com"
        campaign_app.command(name, help=summary + example)(_recipient_command(method, done))


_register_recipient_commands()


def figures_table(figures: list[Figure]) -> list[str]:
    """A campaign's figures (metrics/figures.py) as an aligned table: people first, what
    machines did on the line below, "—" for a rate that cannot be measured."""
    lines = [f"  {'metric':<18} {'count':>8} {'rate':>8}"]
    for figure in figures:
        lines.append(f"  {figure.label.lower():<18} {figure.count:>8} {figure.shown_rate:>8}")
        if figure.machines:
            lines.append(f"  {'  by machines':<18} {figure.machines:>8}")
    lines += [f"  {f.label.lower()}: not measured, {f.unmeasured}" for f in figures if f.unmeasured]
    return lines


@campaign_app.command("stats")
def campaign_stats(campaign_id: CampaignId, as_json: JsonOption = False) -> None:
    """A campaign's status, its recipients by state, and its metrics with rates.

    Example:

        mailramp campaign stats 6f1c… --json | jq .metrics.open_rate
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> tuple[Campaign, dict[str, int], CampaignMetrics]:
        campaign = await find_campaign(runtime, campaign_id)
        counts = await runtime.sending.status_counts(campaign.user_id, campaign.campaign_id)
        metrics = await runtime.metrics.get_campaign_metrics(
            campaign.campaign_id, user_id=campaign.user_id
        )
        return campaign, counts, metrics

    campaign, counts, metrics = run(settings, work, as_json=as_json)
    lines = [
        f"{campaign.campaign_name} ({campaign.campaign_id}): {campaign.status}",
        f"  window: {campaign.start_time.isoformat()} → {campaign.end_time.isoformat()}",
        "  recipients: " + (", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"),
        f"  sent {metrics.total_sent}, delivered {metrics.total_delivered}, "
        f"bounced {metrics.total_bounced} ({metrics.bounce_rate}%)",
        *figures_table(campaign.figures(metrics)),
    ]
    emit(
        as_json,
        {"campaign": campaign, "recipients": counts, "metrics": metrics},
        lines,
    )


# `show` was the first name of `stats`; kept so existing scripts keep working.
campaign_app.command("show", help="Same as `stats`.", hidden=True)(campaign_stats)


@campaign_app.command("list")
def campaign_list(
    user: Annotated[str, typer.Option("--user", help="Owner: login or user _id.")],
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    as_json: JsonOption = False,
) -> None:
    """A user's campaigns, newest first.

    Example:

        mailramp campaign list --user ann@acme.com --status active
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> list[Campaign]:
        owner = await find_user(runtime, user)
        page = await runtime.campaigns.list_campaigns(owner.user_id, status=status, limit=500)
        return list(page.items)

    campaigns = run(settings, work, as_json=as_json)
    lines = [f"{c.campaign_id}  {c.status:<10} {c.campaign_name}" for c in campaigns] or [
        "no campaigns"
    ]
    emit(as_json, campaigns, lines)


@campaign_app.command("export")
def campaign_export(
    campaign_id: CampaignId,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Every recipient and what happened to them, as CSV (cells a spreadsheet would run as a
    formula are prefixed with an apostrophe).

    Example:

        mailramp campaign export 6f1c… -o results.csv
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> int:
        campaign = await find_campaign(runtime, campaign_id)
        stream: Any = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
        rows = 0
        try:
            writer = csv.writer(stream)
            async for cells in runtime.sending.export_rows(campaign):
                writer.writerow(cells)
                rows += 1
        finally:
            if output:
                stream.close()
        return rows - 1

    written = run(settings, work)
    if output:
        typer.echo(f"wrote {written} recipient(s) to {output}", err=True)


@campaign_app.command("resend-uncertain")
def campaign_resend_uncertain(campaign_id: CampaignId, as_json: JsonOption = False) -> None:
    """Queue the campaign's `uncertain` records again (their recipients may get two copies:
    a crash came between handing the email over and recording it).

    Example:

        mailramp campaign resend-uncertain 6f1c…
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> int:
        campaign = await find_campaign(runtime, campaign_id)
        return await runtime.sending.resend_uncertain(campaign.user_id, campaign.campaign_id)

    queued = run(settings, work, as_json=as_json)
    emit(as_json, {"queued": queued}, f"queued {queued} uncertain record(s) to send again")
