"""What every command shares: settings and logging, running async work on a runtime,
printing for people or (with --json) for scripts, and exit codes.

Exit codes (docs/cli.md):

    0  done
    1  the input was refused (a field, a file, a plan that does not fit) or the work failed
    2  wrong usage: an unknown option, a missing argument, a file that does not exist
    3  not found: no such user, mailbox or campaign
    4  conflict: the state does not allow it (e.g. resuming a cancelled campaign), or a duplicate
    5  configuration: the database or the encryption keys cannot be used
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import json
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import date
from enum import Enum
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel

from mailramp.accounts.models import User
from mailramp.auth.admin import Actor
from mailramp.campaigns.models import Campaign
from mailramp.config import Settings, load_settings_from_environment
from mailramp.errors import (
    ConfigurationError,
    ConflictError,
    DatabaseUnavailableError,
    MailrampError,
    NotFoundError,
)
from mailramp.kit.ids import is_object_id
from mailramp.mailboxes.models import Mailbox
from mailramp.observability import JsonFormatter, configure_logging
from mailramp.runtime import Runtime, open_runtime, open_store
from mailramp.storage import Store

T = TypeVar("T")

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_CONFIGURATION = 5
EXIT_INTERRUPTED = 130

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document for scripts instead of text.")
]
PasswordStdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from stdin.")
]


def load_settings(*, server: bool = False) -> Settings:
    """The settings from the environment, with logging set up as they say. One-shot
    commands (`server=False`) log warnings and errors only, unless MAILRAMP_LOG_LEVEL is
    DEBUG, so their output is what they print."""
    try:
        settings = load_settings_from_environment()
    except ConfigurationError as error:
        raise fail(error) from None
    if not server and settings.log_level.upper() != "DEBUG":
        settings = settings.model_copy(update={"log_level": "WARNING"})
    configure_logging(settings)
    return settings


def exit_code(error: BaseException) -> int:
    """The documented exit code for an error."""
    if isinstance(error, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, ConflictError):
        return EXIT_CONFLICT
    if isinstance(error, ConfigurationError | DatabaseUnavailableError):
        return EXIT_CONFIGURATION
    return EXIT_REFUSED


def command_group(help: str) -> typer.Typer:
    """A group of commands whose help is printed as written: no Rich markup, so text such
    as "[start, start + duration]" stays."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)


def fail(error: MailrampError, *, as_json: bool = False) -> typer.Exit:
    """Report `error` on stderr — as {"error": …} with --json, as one JSON log line when
    MAILRAMP_LOG_FORMAT=json (read from the environment as it is: the error may be that
    the settings cannot be read), else one line of text; the Exit to raise."""
    code = exit_code(error)
    if as_json:
        typer.echo(json.dumps({"error": error.to_dict()}), err=True)
    elif os.environ.get("MAILRAMP_LOG_FORMAT", "").strip().lower() == "json":
        record = logging.LogRecord("mailramp", logging.ERROR, "", 0, error.message, None, None)
        fields = {key: value for key, value in error.to_dict().items() if key != "message"}
        record.__dict__.update({**fields, "exit_code": code})
        typer.echo(JsonFormatter().format(record), err=True)
    else:
        typer.secho(f"error: {error.message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def run(settings: Settings, work: Callable[[Runtime], Awaitable[T]], *, as_json: bool = False) -> T:
    """Open the runtime, run `work` on it, close it; errors become their exit codes."""

    async def main() -> T:
        runtime = await open_runtime(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    return run_main(settings, main, as_json=as_json)


def run_on_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """`run` for the commands that need only the database (the schema commands): the
    store is opened as it is, without the runtime's checks and migrations."""

    async def main() -> T:
        store = open_store(settings)
        try:
            return await work(store)
        finally:
            await store.close()

    return run_main(settings, main)


def run_main(
    settings: Settings, main: Callable[[], Coroutine[Any, Any, T]], *, as_json: bool = False
) -> T:
    """Run a command's `main` to its end; a refusal, an unreachable database and Ctrl-C
    become the exit codes documented above."""
    try:
        return asyncio.run(main())
    except MailrampError as error:
        raise fail(error, as_json=as_json) from None
    except (OSError, ConnectionError) as error:
        problem = ConfigurationError(f"cannot reach the database ({settings.backend}): {error}")
        raise fail(problem, as_json=as_json) from None
    except KeyboardInterrupt:
        raise typer.Exit(code=EXIT_INTERRUPTED) from None


def jsonable(value: Any) -> Any:
    """Models, datetimes and enums in a form json.dumps takes; secrets never included
    (the models' dumps leave them out or mask them)."""
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(mode="json", by_alias=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, date):  # a datetime too
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def emit(as_json: bool, data: Any, text: str | Iterable[str]) -> None:
    """Print `data` as JSON, or `text` for people."""
    if as_json:
        typer.echo(json.dumps(jsonable(data), indent=2, sort_keys=True))
        return
    for line in [text] if isinstance(text, str) else text:
        typer.echo(line)


def progress_stream() -> Any:
    """Where progress bars go: stderr, so stdout stays clean for --json and pipes."""
    return sys.stderr


# -- finding things by what operators type ------------------------------------------------


def operator() -> Actor:
    """The person at this shell, as the audit log names them (auth/admin.py)."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        who = "unknown"
    return Actor.operator(f"{who}@{socket.gethostname()}")


async def find_user(runtime: Runtime, who: str) -> User:
    """A user by login_id (or email used as login) or by its 24-hex `_id`."""
    if is_object_id(who):
        return await runtime.accounts.get_user(who)
    return await runtime.accounts.get_user_by_login_id(who.strip().lower())


async def find_mailbox(runtime: Runtime, user: User, which: str) -> Mailbox:
    """One of the user's mailboxes by email address or `_id`."""
    if is_object_id(which):
        return await runtime.mailboxes.get_mailbox(user.user_id, which)
    wanted = which.strip().lower()
    for mailbox in await runtime.mailboxes.list_mailboxes(user.user_id):
        if mailbox.email.lower() == wanted:
            return mailbox
    raise NotFoundError("mailbox", which)


async def find_campaign(runtime: Runtime, campaign_id: str) -> Campaign:
    """A campaign by campaign_id, whoever owns it: the CLI is the operator's tool; what it
    then does goes through the owner-scoped services as that owner."""
    return await runtime.campaigns.get_campaign_of_anyone(campaign_id)
