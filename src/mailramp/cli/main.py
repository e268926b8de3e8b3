"""`mailramp`: serve, migrate, manage keys."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from mailramp import __version__
from mailramp.config import Settings
from mailramp.errors import MailrampError
from mailramp.kit.secrets import KeyFile, generate_key
from mailramp.runtime import migrate_store, open_runtime, open_store
from mailramp.storage.sql.migrate import head_revision

app = typer.Typer(
    help="mailramp: self-hostable cold-email outreach.", no_args_is_help=True, add_completion=False
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys for stored mailbox secrets.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")


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
