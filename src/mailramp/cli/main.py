"""`mailramp`: serve, migrate, manage keys."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from mailramp import __version__
from mailramp.campaigns.models import Campaign
from mailramp.config import Settings
from mailramp.errors import MailrampError, NotFoundError
from mailramp.kit.secrets import KeyFile, generate_key
from mailramp.kit.validation import campaign_id_arg
from mailramp.metrics.models import CampaignMetrics
from mailramp.runtime import Runtime, migrate_store, open_runtime, open_store
from mailramp.sending.models import ImportReport
from mailramp.storage.sql.migrate import head_revision

app = typer.Typer(
    help="mailramp: self-hostable cold-email outreach.", no_args_is_help=True, add_completion=False
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys for stored mailbox secrets.", no_args_is_help=True)
campaign_app = typer.Typer(help="Campaigns: recipients and their state.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(campaign_app, name="campaign")


def _settings() -> Settings:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return settings


def _fail(error: MailrampError) -> typer.Exit:
    typer.secho(f"error: {error.message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Run the web app (API, and later dashboard and worker) in one process."""
    import uvicorn

    from mailramp.web.app import create_app

    settings = _settings()
    try:
        # Check the database and keys before binding the port, for a clear message.
        asyncio.run(_check(settings))
    except MailrampError as error:
        raise _fail(error) from None
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
    )


async def _check(settings: Settings) -> None:
    runtime = await open_runtime(settings)
    await runtime.close()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations."""
    settings = _settings()

    async def run() -> str:
        store = open_store(settings)
        try:
            return await migrate_store(store)
        finally:
            await store.close()

    try:
        revision = asyncio.run(run())
    except MailrampError as error:
        raise _fail(error) from None
    typer.echo(f"database at revision {revision} ({settings.backend})")


@db_app.command("current")
def db_current() -> None:
    """Print the applied schema revision and the newest one this version knows."""
    settings = _settings()

    async def run() -> str | None:
        store = open_store(settings)
        try:
            return await store.schema_version()
        finally:
            await store.close()

    typer.echo(f"current: {asyncio.run(run()) or '(empty database)'}")
    typer.echo(f"head:    {head_revision()}")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key (for MAILRAMP_ENCRYPTION_KEYS)."""
    typer.echo(generate_key())


@keys_app.command("rotate")
def keys_rotate(
    new_key: Annotated[
        bool,
        typer.Option(
            help="Add a new key to the key file first (with keys in the environment, put the "
            "new key first in MAILRAMP_ENCRYPTION_KEYS instead and use --no-new-key)."
        ),
    ] = True,
    drop_old: Annotated[
        bool, typer.Option(help="Remove the older keys from the key file once all is re-encrypted.")
    ] = False,
) -> None:
    """Re-encrypt every stored secret under the newest key."""
    settings = _settings()
    from_environment = settings.encryption_key_list() is not None
    key_file = KeyFile(Path(settings.encryption_key_file).absolute())
    if new_key:
        if from_environment:
            typer.secho(
                "keys come from MAILRAMP_ENCRYPTION_KEYS: put the new key first there "
                "and run `mailramp keys rotate --no-new-key`",
                err=True,
                fg=typer.colors.RED,
            )
            raise typer.Exit(code=2)
        if key_file.exists():
            key_file.write([generate_key(), *key_file.read()])

    async def run() -> int:
        runtime = await open_runtime(settings)
        try:
            return (await runtime.mailboxes.rotate_secrets()).rotated
        finally:
            await runtime.close()

    try:
        rotated = asyncio.run(run())
    except MailrampError as error:
        raise _fail(error) from None
    typer.echo(f"re-encrypted {rotated} secret(s) under the newest key")
    if drop_old and not from_environment:
        keys = key_file.read()
        key_file.write(keys[:1])
        typer.echo(f"removed {len(keys) - 1} older key(s) from {key_file.path}")


@app.command()
def worker() -> None:
    """Send due email and read inboxes for replies and bounces until SIGTERM or Ctrl-C
    (then finish the sends in flight and stop).

    Run as many as you like on PostgreSQL; each record is sent by one worker at most.
    """
    settings = _settings()

    async def run() -> None:
        runtime = await open_runtime(settings)
        sender = runtime.worker()
        poller = runtime.inbox_poller()

        def stop() -> None:
            sender.stop()
            poller.stop()

        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, stop)
        try:
            await asyncio.gather(sender.run(), poller.run())
        finally:
            await runtime.close()

    try:
        asyncio.run(run())
    except MailrampError as error:
        raise _fail(error) from None


async def _owned_campaign(runtime: Runtime, campaign_id: str) -> Campaign:
    # The CLI is a trusted operator tool: it finds a campaign whoever owns it, then acts as
    # that owner through the scoped services.
    campaign = await runtime.store.get_campaign_unscoped(campaign_id_arg(campaign_id))
    if campaign is None:
        raise NotFoundError("campaign", campaign_id)
    return campaign


@campaign_app.command("import")
def campaign_import(
    campaign_id: Annotated[str, typer.Argument(help="The campaign's campaign_id (a UUID).")],
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A CSV file.")
    ],
) -> None:
    """Import recipients from a CSV file (header row with an `email` column)."""
    settings = _settings()
    size = file.stat().st_size

    async def run() -> ImportReport:
        runtime = await open_runtime(settings)
        try:
            campaign = await _owned_campaign(runtime, campaign_id)
            with (
                file.open("rb") as stream,
                typer.progressbar(length=size, label="importing", file=sys.stderr) as bar,
            ):
                position = 0

                def advance(offset: int) -> None:
                    nonlocal position
                    bar.update(max(offset - position, 0))
                    position = max(offset, position)

                return await runtime.sending.import_recipients(
                    campaign.user_id, campaign.campaign_id, stream, on_progress=advance
                )
        finally:
            await runtime.close()

    try:
        report = asyncio.run(run())
    except MailrampError as error:
        raise _fail(error) from None
    typer.echo(report.summary())
    for invalid in report.invalid[:20]:
        typer.echo(f"  row {invalid.row}: {invalid.value!r}: {invalid.reason}")
    if report.invalid_count > 20:
        typer.echo(f"  … and {report.invalid_count - 20} more invalid rows")


@campaign_app.command("show")
def campaign_show(
    campaign_id: Annotated[str, typer.Argument(help="The campaign's campaign_id.")],
) -> None:
    """Print a campaign's status, its recipients by state, and its metrics."""
    settings = _settings()

    async def run() -> tuple[Campaign, dict[str, int], CampaignMetrics]:
        runtime = await open_runtime(settings)
        try:
            campaign = await _owned_campaign(runtime, campaign_id)
            counts = await runtime.sending.status_counts(campaign.user_id, campaign.campaign_id)
            metrics = await runtime.metrics.get_campaign_metrics(
                campaign.campaign_id, user_id=campaign.user_id
            )
            return campaign, counts, metrics
        finally:
            await runtime.close()

    try:
        campaign, counts, metrics = asyncio.run(run())
    except MailrampError as error:
        raise _fail(error) from None
    typer.echo(f"{campaign.campaign_name} ({campaign.campaign_id}): {campaign.status}")
    typer.echo(f"  window: {campaign.start_time.isoformat()} → {campaign.end_time.isoformat()}")
    typer.echo("  recipients: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    typer.echo(
        f"  sent {metrics.total_sent}, delivered {metrics.total_delivered}, "
        f"bounced {metrics.total_bounced} ({metrics.bounce_rate}%)"
    )


@campaign_app.command("resend-uncertain")
def campaign_resend_uncertain(
    campaign_id: Annotated[str, typer.Argument(help="The campaign's campaign_id.")],
) -> None:
    """Queue the campaign's `uncertain` records again (their recipients may get two copies)."""
    settings = _settings()

    async def run() -> int:
        runtime = await open_runtime(settings)
        try:
            campaign = await _owned_campaign(runtime, campaign_id)
            return await runtime.sending.resend_uncertain(campaign.user_id, campaign.campaign_id)
        finally:
            await runtime.close()

    try:
        queued = asyncio.run(run())
    except MailrampError as error:
        raise _fail(error) from None
    typer.echo(f"queued {queued} uncertain record(s) to send again")
