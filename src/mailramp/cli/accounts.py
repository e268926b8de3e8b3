"""`mailramp user …` and `mailramp mailbox …`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mailramp.accounts.models import User
from mailramp.cli.common import (
    JsonOption,
    PasswordStdinOption,
    command_group,
    emit,
    find_mailbox,
    find_user,
    load_settings,
    operator,
    run,
)
from mailramp.mailboxes.models import Mailbox, Verdict
from mailramp.runtime import Runtime

user_app = command_group("People who sign in.")
mailbox_app = command_group("Mailboxes that send.")


def _secret(value: str | None, from_stdin: bool, what: str) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise typer.BadParameter(f"no {what} on stdin")
        return line
    if value:
        return value
    return str(typer.prompt(what.capitalize(), hide_input=True, confirmation_prompt=True))


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Option("--name", help="The person's name.")],
    login: Annotated[str, typer.Option("--login", help="Email or username to sign in with.")],
    email: Annotated[str | None, typer.Option(help="Contact email, if not the login.")] = None,
    password: Annotated[
        str | None,
        typer.Option(help="Prompted for when left out (hidden); prefer --password-stdin."),
    ] = None,
    password_stdin: PasswordStdinOption = False,
    admin: Annotated[
        bool, typer.Option("--admin", help="Make them an admin (the first user always is).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a local account that signs in with a password (written to the audit log).

    Example:

        echo "$PASSWORD" | mailramp user create --name "Ann Lee" --login ann@acme.com \\
            --password-stdin
    """
    settings = load_settings()
    secret = _secret(password, password_stdin, "password")

    async def work(runtime: Runtime) -> User:
        created = await runtime.admin.invite(
            operator(), user_name=name, login_id=login, email=email, admin=admin, password=secret
        )
        return created.user

    user = run(settings, work, as_json=as_json)
    admin_note = ", admin" if user.is_admin else ""
    emit(as_json, user, f"created user {user.login_id} ({user.user_id}{admin_note})")


@mailbox_app.command("add")
def mailbox_add(
    user: Annotated[str, typer.Option("--user", help="Owner: login or user _id.")],
    email: Annotated[str, typer.Option(help="The address mail is sent from.")],
    smtp_host: Annotated[str, typer.Option(help="SMTP server host.")],
    smtp_port: Annotated[int, typer.Option(help="SMTP port (587 STARTTLS, 465 TLS).")] = 587,
    smtp_security: Annotated[
        str, typer.Option(help="starttls, tls, or plain (plain only on loopback/private nets).")
    ] = "starttls",
    smtp_username: Annotated[
        str | None, typer.Option(help="SMTP login, if not the address.")
    ] = None,
    imap_host: Annotated[
        str | None, typer.Option(help="IMAP host, to read replies and bounces.")
    ] = None,
    imap_port: Annotated[int | None, typer.Option(help="IMAP port (993 TLS).")] = None,
    imap_security: Annotated[str | None, typer.Option(help="tls, starttls or plain.")] = None,
    display_name: Annotated[str | None, typer.Option(help="Name shown in From.")] = None,
    daily_limit: Annotated[int, typer.Option(help="Most emails a day from this mailbox.")] = 50,
    already_warm: Annotated[
        bool | None,
        typer.Option(
            "--already-warm/--ramp-up",
            help="Already warm: the daily limit applies from day one. Ramp up: start at 10 "
            "a day, 2 more after each good day. Default: the server's "
            "(MAILRAMP_RAMP_NEW_MAILBOXES).",
        ),
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="Prompted for when left out; prefer --password-stdin.")
    ] = None,
    password_stdin: PasswordStdinOption = False,
    no_login: Annotated[
        bool,
        typer.Option(
            "--no-login",
            help="The SMTP server takes mail without a login (a relay on your own network): "
            "no password is asked for or stored. Not with --imap-host.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Link an SMTP/IMAP mailbox to a user (the password is stored encrypted).

    Example:

        echo "$SMTP_PASSWORD" | mailramp mailbox add --user ann@acme.com \\
            --email ann@acme.com --smtp-host smtp.acme.com --imap-host imap.acme.com \\
            --daily-limit 40 --password-stdin

        mailramp mailbox add --user ann@acme.com --email ann@acme.com \\
            --smtp-host relay.internal --smtp-port 25 --smtp-security plain --no-login
    """
    settings = load_settings()
    if no_login and (password or password_stdin):
        raise typer.BadParameter("--no-login takes no password", param_hint="--no-login")
    secret = None if no_login else _secret(password, password_stdin, "mailbox password")
    fields: dict[str, object] = {
        "email": email,
        "provider": "smtp",
        "password": secret,
        "smtp_host": smtp_host,
        "smtp_port": smtp_port,
        "smtp_security": smtp_security,
        "smtp_username": smtp_username,
        "imap_host": imap_host,
        "imap_port": imap_port,
        "imap_security": imap_security,
        "display_name": display_name,
        "daily_limit": daily_limit,
        "already_warm": already_warm,
    }

    async def work(runtime: Runtime) -> Mailbox:
        owner = await find_user(runtime, user)
        given = {k: v for k, v in fields.items() if v is not None}
        return await runtime.mailboxes.create_mailbox(owner.user_id, **given)

    mailbox = run(settings, work, as_json=as_json)
    emit(as_json, mailbox, f"linked mailbox {mailbox.email} ({mailbox.mailbox_id})")


@mailbox_app.command("list")
def mailbox_list(
    user: Annotated[str, typer.Option("--user", help="Owner: login or user _id.")],
    as_json: JsonOption = False,
) -> None:
    """List a user's mailboxes with status and daily limit.

    Example:

        mailramp mailbox list --user ann@acme.com
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> list[Mailbox]:
        owner = await find_user(runtime, user)
        return await runtime.mailboxes.list_mailboxes(owner.user_id)

    mailboxes = run(settings, work, as_json=as_json)
    lines = [
        f"{m.mailbox_id}  {m.email:<32} {m.status:<8} limit {m.daily_limit}/day"
        + ("  primary" if m.is_primary else "")
        for m in mailboxes
    ] or ["no mailbox linked"]
    emit(as_json, mailboxes, lines)


@mailbox_app.command("check")
def mailbox_check(
    mailbox: Annotated[str, typer.Argument(help="The mailbox: its address or _id.")],
    user: Annotated[str, typer.Option("--user", help="Owner: login or user _id.")],
    as_json: JsonOption = False,
) -> None:
    """Check the mailbox's sending domain in DNS now: MX, SPF, DKIM, DMARC and the tracking
    domain, each pass / warn / fail, with the record to publish for a warning or a failure.
    Exits 1 when a check fails or DNS did not answer, so scripts can gate on it.

    Example:

        mailramp mailbox check ann@acme.com --user ann@acme.com
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> Mailbox:
        owner = await find_user(runtime, user)
        found = await find_mailbox(runtime, owner, mailbox)
        return await runtime.mailboxes.check_domain(owner.user_id, found.mailbox_id)

    checked = run(settings, work, as_json=as_json)
    emit(as_json, checked, dns_check_lines(checked))
    if checked.dns_check_problem is not None or checked.dns_verdict is Verdict.FAIL:
        raise typer.Exit(1)


def dns_check_lines(mailbox: Mailbox) -> list[str]:
    """The domain checks as lines for people: one per check, the record to publish under
    it; nothing depends on the terminal's width."""
    checked = f"{mailbox.dns_checked_at:%Y-%m-%d %H:%M} UTC" if mailbox.dns_checked_at else "never"
    lines = [f"{mailbox.domain} ({mailbox.email}), checked {checked}"]
    if mailbox.dns_check_problem:
        lines.append(f"not checked: {mailbox.dns_check_problem}")
    for check in mailbox.dns_checks:
        lines.append(f"{check.verdict.value:<5} {check.name:<16} {check.found}")
        if check.record:
            lines.append(f"{'':<22} publish: {check.record}")
    return lines
