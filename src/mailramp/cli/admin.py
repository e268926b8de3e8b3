"""Administering users from the shell: `mailramp user list|deactivate|reactivate|
reset-password|make-admin|remove-admin`, `mailramp key create|list|revoke` and
`mailramp audit list`.

The operator at the command line already holds the database and the keys, so no admin
account is asked for; every change is written to the audit log under the system user and
host that made it (auth/admin.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import typer

from mailramp.accounts.models import User
from mailramp.auth.admin import Actor, AdminResult
from mailramp.auth.models import ApiKey, AuditEntry
from mailramp.cli.accounts import user_app
from mailramp.cli.common import (
    JsonOption,
    command_group,
    emit,
    find_user,
    load_settings,
    operator,
    run,
)
from mailramp.runtime import Runtime

key_app = command_group("API keys of a user, for scripts.")
audit_app = command_group("The audit log: what admins and operators did to accounts.")

UserArgument = Annotated[str, typer.Argument(help="The user: login or _id.")]
UserOption = Annotated[str, typer.Option("--user", help="The user: login or _id.")]


def user_line(user: User) -> str:
    """One user for people: id, login, name, and what sets them apart."""
    marks = [m for m, on in (("admin", user.is_admin), ("deactivated", not user.is_active)) if on]
    last = f"{user.last_login:%Y-%m-%d %H:%M} UTC" if user.last_login else "never"
    flags = f"  [{', '.join(marks)}]" if marks else ""
    return f"{user.user_id}  {user.login_id}  ({user.user_name})  last sign-in {last}{flags}"


def ended_line(result: AdminResult) -> list[str]:
    return [] if result.ended is None else [str(result.ended)]


def _act(
    who: str, as_json: bool, action: Callable[[Runtime, Actor, str], Awaitable[AdminResult]]
) -> AdminResult:
    settings = load_settings()

    async def work(runtime: Runtime) -> AdminResult:
        user = await find_user(runtime, who)
        return await action(runtime, operator(), user.user_id)

    return run(settings, work, as_json=as_json)


@user_app.command("list")
def user_list(as_json: JsonOption = False) -> None:
    """List every user of the instance, oldest first: admins and deactivated ones marked.

    Example:

        mailramp user list
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> list[User]:
        return await runtime.admin.list_users(operator())

    users = run(settings, work, as_json=as_json)
    emit(as_json, users, [user_line(user) for user in users] or ["no user yet"])


@user_app.command("deactivate")
def user_deactivate(user: UserArgument, as_json: JsonOption = False) -> None:
    """Stop a user at once: their next request is refused, their sessions end and their API
    keys are revoked. Their data, mailboxes and campaigns stay.

    Example:

        mailramp user deactivate bob@acme.com
    """
    result = _act(user, as_json, lambda r, a, u: r.admin.deactivate(a, u))
    emit(as_json, result, [f"deactivated {result.user.login_id}", *ended_line(result)])


@user_app.command("reactivate")
def user_reactivate(user: UserArgument, as_json: JsonOption = False) -> None:
    """Let a deactivated user sign in again (their old sessions and keys stay ended).

    Example:

        mailramp user reactivate bob@acme.com
    """
    result = _act(user, as_json, lambda r, a, u: r.admin.reactivate(a, u))
    emit(as_json, result, f"reactivated {result.user.login_id}")


@user_app.command("reset-password")
def user_reset_password(user: UserArgument, as_json: JsonOption = False) -> None:
    """Give a user a new generated password, printed this once: hand it over, they change it
    on their settings page. Their sessions end and their API keys are revoked.

    Example:

        mailramp user reset-password bob@acme.com
    """
    result = _act(user, as_json, lambda r, a, u: r.admin.reset_password(a, u))
    lines = [
        f"new password for {result.user.login_id} (shown this once): {result.password}",
        *ended_line(result),
    ]
    emit(as_json, result, lines)


@user_app.command("make-admin")
def user_make_admin(user: UserArgument, as_json: JsonOption = False) -> None:
    """Make a user an admin: they see the Admin page and the /api/v1/admin routes.

    Example:

        mailramp user make-admin ann@acme.com
    """
    result = _act(user, as_json, lambda r, a, u: r.admin.set_admin(a, u, admin=True))
    emit(as_json, result, f"{result.user.login_id} is an admin")


@user_app.command("remove-admin")
def user_remove_admin(user: UserArgument, as_json: JsonOption = False) -> None:
    """Make an admin an ordinary user again (never the last active admin).

    Example:

        mailramp user remove-admin ann@acme.com
    """
    result = _act(user, as_json, lambda r, a, u: r.admin.set_admin(a, u, admin=False))
    emit(as_json, result, f"{result.user.login_id} is no longer an admin")


@key_app.command("create")
def key_create(
    user: UserOption,
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    as_json: JsonOption = False,
) -> None:
    """Make an API key for a user; the key is printed this once (only its hash is kept).

    Example:

        mailramp key create --user ann@acme.com --name "CRM sync"
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> tuple[ApiKey, str]:
        owner = await find_user(runtime, user)
        return await runtime.admin.create_api_key(operator(), owner.user_id, name=name)

    key, secret = run(settings, work, as_json=as_json)
    data = {**key.model_dump(mode="json", by_alias=True), "key": secret}
    emit(as_json, data, [f"created API key {key.name} ({key.prefix}), shown this once:", secret])


@key_app.command("list")
def key_list(user: UserOption, as_json: JsonOption = False) -> None:
    """List a user's API keys: name, prefix, made, last used, revoked.

    Example:

        mailramp key list --user ann@acme.com
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> list[ApiKey]:
        owner = await find_user(runtime, user)
        return await runtime.admin.list_api_keys(operator(), owner.user_id)

    keys = run(settings, work, as_json=as_json)
    emit(as_json, keys, [_key_line(key) for key in keys] or ["no API key"])


def _key_line(key: ApiKey) -> str:
    used = f"{key.last_used_at:%Y-%m-%d %H:%M} UTC" if key.last_used_at else "never"
    revoked = f"  revoked {key.revoked_at:%Y-%m-%d %H:%M} UTC" if key.revoked_at else ""
    made = f"{key.created_at:%Y-%m-%d %H:%M} UTC"
    return f"{key.id}  {key.prefix}  {key.name}  made {made}  last used {used}{revoked}"


@key_app.command("revoke")
def key_revoke(
    key: Annotated[str, typer.Argument(help="The key: its prefix (mr_AbCd1234) or _id.")],
    user: UserOption,
    as_json: JsonOption = False,
) -> None:
    """Revoke a user's API key at once.

    Example:

        mailramp key revoke mr_AbCd1234 --user ann@acme.com
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> ApiKey:
        owner = await find_user(runtime, user)
        return await runtime.admin.revoke_api_key(operator(), owner.user_id, key)

    revoked = run(settings, work, as_json=as_json)
    emit(as_json, revoked, f"revoked API key {revoked.name} ({revoked.prefix})")


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option(help="How many entries, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Show the audit log, newest first: when, who, what, to whom.

    Example:

        mailramp audit list --limit 20
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> list[AuditEntry]:
        return await runtime.admin.audit_log(operator(), limit=limit)

    entries = run(settings, work, as_json=as_json)
    emit(as_json, entries, [audit_line(entry) for entry in entries] or ["nothing yet"])


def audit_line(entry: AuditEntry) -> str:
    detail = f"  ({entry.detail})" if entry.detail else ""
    return (
        f"{entry.at:%Y-%m-%d %H:%M:%S} UTC  {entry.actor}  {entry.action}  {entry.target}{detail}"
    )
