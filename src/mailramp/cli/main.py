"""`mailramp`: the command line. Every command has --help with an example; exit codes are in
cli/common.py and docs/cli.md."""

from __future__ import annotations

import asyncio
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from mailramp import __version__
from mailramp.cli.accounts import mailbox_app, user_app
from mailramp.cli.admin import audit_app, key_app
from mailramp.cli.campaigns import campaign_app
from mailramp.cli.common import (
    JsonOption,
    command_group,
    emit,
    load_settings,
    run,
    run_on_store,
)
from mailramp.cli.conversations import inbox_app, lead_app
from mailramp.cli.deliverability import warmup_app
from mailramp.cli.demo import demo
from mailramp.cli.legacy import migrate_legacy
from mailramp.cli.tracking import networks_app
from mailramp.cli.webhooks import webhook_app
from mailramp.config import Settings
from mailramp.kit.secrets import KeyFile, generate_key
from mailramp.runtime import (
    Runtime,
    downgrade_store,
    migrate_store,
    migration_report,
    schema_head,
)
from mailramp.sending.heartbeats import WorkerStatus
from mailramp.storage import Store
from mailramp.web.health import health_server

app = typer.Typer(
    help="mailramp: self-hostable cold-email outreach.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
db_app = command_group("Database schema.")
keys_app = command_group("Encryption keys for stored mailbox secrets.")
app.command()(demo)
app.command("migrate-legacy")(migrate_legacy)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(user_app, name="user")
app.add_typer(key_app, name="key")
app.add_typer(audit_app, name="audit")
app.add_typer(mailbox_app, name="mailbox")
app.add_typer(warmup_app, name="warmup")
app.add_typer(campaign_app, name="campaign")
app.add_typer(lead_app, name="lead")
app.add_typer(inbox_app, name="inbox")
app.add_typer(webhook_app, name="webhook")
app.add_typer(networks_app, name="networks")


def _settings(*, server: bool = False) -> Settings:
    return load_settings(server=server)


def _version_line() -> str:
    """The version, and the schema revisions the code expects on each kind of database."""
    sql, mongodb = schema_head("sqlite"), schema_head("mongodb")
    return f"mailramp {__version__} (schema {sql} on SQL, {mongodb} on MongoDB)"


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(_version_line())
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """mailramp: self-hostable cold-email outreach."""


@app.command()
def version() -> None:
    """Print the version.

    Example:

        mailramp version
    """
    typer.echo(_version_line())


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Run the web app: API, dashboard, tracking endpoints and (unless MAILRAMP_RUN_WORKER
    is false) a sending worker, in one process. Stops gracefully on SIGTERM/Ctrl-C.

    Example:

        MAILRAMP_DATABASE_URL=postgresql://mailramp@db/mailramp mailramp serve --port 8000
    """
    import uvicorn

    from mailramp.web.app import create_app

    settings = _settings(server=True)
    run(settings, _nothing)  # the database and keys are checked before the port is bound
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's lines go through our handler (text or JSON)
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
    )


async def _nothing(runtime: Runtime) -> None:
    pass


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations (run it as a deploy step with
    MAILRAMP_AUTO_MIGRATE=false on the servers). On MongoDB: bring in the indexes —
    missing ones created, the same ones under another name adopted, nothing dropped —
    record the document layout version, and print the indexes' report: each conflict
    with an existing index, what goes wrong meanwhile and the commands of the way out.

    Example:

        MAILRAMP_DATABASE_URL=postgresql://mailramp@db/mailramp mailramp db upgrade
    """
    settings = _settings()

    async def upgrade(store: Store) -> tuple[str, list[str]]:
        return await migrate_store(store), migration_report(store)

    revision, report = run_on_store(settings, upgrade)
    typer.echo(f"database at revision {revision} ({settings.backend})")
    for line in report:
        typer.echo(line)


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="The revision to go back to.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: the later migrations' additions go.")
    ] = False,
) -> None:
    """Undo the migrations after REVISION, for going back to the older mailramp that
    needs it (docs/deployment.md, "Upgrades and rollbacks"). On SQL each later migration's
    downgrade runs — what it added (columns, tables, indexes) is dropped with its data;
    on MongoDB the older layout version is recorded (documents keep what was added).
    Run it with the newer mailramp, before installing the older one.

    Example:

        mailramp db downgrade 0023_events_for_every_record --yes
    """
    settings = _settings()
    if not yes:
        typer.echo(
            f"error: this drops what the migrations after {revision} added, with its data; "
            "back up the database first, then run it again with --yes",
            err=True,
        )
        raise typer.Exit(code=2)
    reached = run_on_store(settings, lambda store: downgrade_store(store, revision))
    typer.echo(f"database at revision {reached} ({settings.backend})")


@db_app.command("current")
def db_current() -> None:
    """Print the applied schema revision and the newest one this version knows.

    Example:

        mailramp db current
    """
    settings = _settings()

    current = run_on_store(settings, lambda store: store.schema_version())
    typer.echo(f"current: {current or '(empty database)'}")
    typer.echo(f"head:    {schema_head(settings.backend)}")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key (for MAILRAMP_ENCRYPTION_KEYS).

    Example:

        export MAILRAMP_ENCRYPTION_KEYS="$(mailramp keys generate)"
    """
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
    """Re-encrypt every stored secret under the newest key: mailbox passwords and tokens,
    and the tracking links' signing keys (which stay the same, so links in mail already
    sent keep working after --drop-old).

    Example:

        mailramp keys rotate --drop-old
    """
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

    rotated = run(settings, lambda runtime: runtime.rotate_secrets())
    typer.echo(f"re-encrypted {rotated} secret(s) under the newest key")
    if drop_old and not from_environment:
        keys = key_file.read()
        key_file.write(keys[:1])
        typer.echo(f"removed {len(keys) - 1} older key(s) from {key_file.path}")


# `mailramp worker` runs one (the callback, its docstring the help); `worker list` lists.
worker_app = typer.Typer(rich_markup_mode=None)
app.add_typer(worker_app, name="worker")


@worker_app.callback(invoke_without_command=True)
def worker(
    context: typer.Context,
    health_port: Annotated[
        int | None,
        typer.Option(help="Serve /healthz and /metrics (Prometheus) on this port; off by default."),
    ] = None,
    health_host: Annotated[str, typer.Option(help="Address for --health-port.")] = "127.0.0.1",
) -> None:
    """Send due email, read inboxes for replies and bounces, and check mailboxes' domains
    in DNS daily, until SIGTERM or Ctrl-C (then finish the sends in flight and stop).

    Run as many as you like on PostgreSQL; each record is sent by one worker at most.
    `mailramp worker list` shows them.

    Example:

        MAILRAMP_DATABASE_URL=postgresql://mailramp@db/mailramp mailramp worker --health-port 9101
    """
    if context.invoked_subcommand is not None:
        return
    # A SIGTERM while starting (checking the database and keys) is kept, not fatal: the
    # worker then stops as soon as it has started, cleanly, with nothing claimed.
    asked_to_stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda number, _frame: asked_to_stop.append(number))
    settings = _settings(server=True)

    async def work(runtime: Runtime) -> None:
        sender = runtime.worker()
        poller = runtime.inbox_poller()
        upkeep = runtime.upkeep()

        def stop() -> None:
            sender.stop()
            poller.stop()
            for job in upkeep:
                job.stop()

        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, stop)
        if asked_to_stop:
            stop()
        everything = [sender.run(), poller.run(), *(job.run() for job in upkeep)]
        if health_port is None:
            await asyncio.gather(*everything)
        else:
            async with health_server(runtime, host=health_host, port=health_port):
                await asyncio.gather(*everything)

    run(settings, work)


@worker_app.command("list")
def worker_list(as_json: JsonOption = False) -> None:
    """The sending workers that ran lately, newest heartbeat first: id, host, version,
    started, last pass, records held, and whether each is alive, stopped, or gone (silent
    for three of its leases: killed, its host down, or stuck). Forgotten after 7 days.

    Example:

        mailramp worker list
    """
    settings = _settings()

    async def work(runtime: Runtime) -> tuple[list[WorkerStatus], datetime]:
        return await runtime.workers.list(), runtime.clock()

    workers, now = run(settings, work, as_json=as_json)
    rows = [{**w.heartbeat.model_dump(mode="json"), "state": w.state.value} for w in workers]
    text = [
        f"{beat.worker_id}  {status.state.value:<7}  {beat.version}  started "
        f"{beat.started_at:%Y-%m-%d %H:%M:%S}  last pass "
        f"{f'{beat.last_pass_at:%H:%M:%S}' if beat.last_pass_at else '-'}  "
        f"holds {beat.held}  heard {_ago(now - beat.beat_at)}"
        for status in workers
        for beat in [status.heartbeat]
    ]
    emit(as_json, rows, text or ["no worker has run yet"])


def _ago(elapsed: timedelta) -> str:
    seconds = max(int(elapsed.total_seconds()), 0)
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"
