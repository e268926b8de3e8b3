"""The dashboard's machinery: templates, the signed-in page user, forms and their CSRF
check. The pages themselves are per domain (`web/<domain>/pages.py`)."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from mailramp import __version__
from mailramp.accounts.models import User
from mailramp.auth.models import Session
from mailramp.conversations.models import status_title
from mailramp.errors import AuthenticationError, ForbiddenError, MailrampError
from mailramp.kit.network import unreachable_for_recipients
from mailramp.mailboxes.models import Mailbox
from mailramp.runtime import Runtime, schema_head
from mailramp.tracking.classify import describe
from mailramp.web.deps import SESSION_COOKIE, RuntimeDep

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
)

TEMPLATES.globals.update(
    SMTP_SECURITY=[("starttls", "starttls"), ("tls", "tls"), ("plain", "plain")],
    IMAP_SECURITY=[
        ("", "as for SMTP"),
        ("tls", "tls"),
        ("starttls", "starttls"),
        ("plain", "plain"),
    ],
)

TZ_COOKIE = "mailramp_tz"


def localtime(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return ""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


TEMPLATES.filters["localtime"] = localtime
TEMPLATES.filters["lead_status"] = status_title
TEMPLATES.filters["describe"] = describe


class SignInRequired(Exception):
    """The page needs a signed-in user: send them to /signin."""


class PageUser:
    """The signed-in user of a page request."""

    def __init__(self, user: User, session: Session) -> None:
        self.user = user
        self.session = session


async def page_user(request: Request, runtime: RuntimeDep) -> PageUser:
    """The session's user, or a redirect to the sign-in page."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired
    try:
        user, session = await runtime.auth.session_user(token)
    except AuthenticationError:
        raise SignInRequired from None
    return PageUser(user, session)


PageUserDep = Annotated[PageUser, Depends(page_user)]


def page_zone(request: Request) -> ZoneInfo:
    try:
        return ZoneInfo(unquote(request.cookies.get(TZ_COOKIE) or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def render(
    request: Request,
    template: str,
    *,
    who: PageUser | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page, with the user, their CSRF token and time zone in its context, and in its
    footer the running version and the schema revision its code expects."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    html = TEMPLATES.get_template(template).render(
        user=who.user if who else None,
        csrf_token=who.session.csrf_token if who else "",
        zone=page_zone(request),
        version=__version__,
        schema=schema_head(runtime.backend) if runtime is not None else "",
        **context,
    )
    return HTMLResponse(html, status_code=status)


def render_section(request: Request, who: PageUser, section: str, **context: Any) -> HTMLResponse:
    """A menu section's own page (`SECTION.html`), the section marked in the menu."""
    return render(request, f"{section}.html", who=who, section=section, **context)


async def read_form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def check_csrf(who: PageUser, form: dict[str, str]) -> None:
    if not hmac.compare_digest(
        form.get("csrf_token", "").encode(), who.session.csrf_token.encode()
    ):
        raise ForbiddenError("the form expired or came from another site; reload the page")


def form_errors(error: MailrampError, known: tuple[str, ...]) -> dict[str, str]:
    """The error placed next to its field when the form has one, else above the form."""
    field, message = error.field or "form", error.detail
    if field == "total_recipients" and "file" in known:
        field = "file"  # the recipients do not fit: the upload is what to change
    return {field if field in known else "form": message}


async def lead_choices(runtime: Runtime, user_id: str) -> list[tuple[str, str]]:
    """The lead statuses a person can be given, each with its title, for a form's list."""
    return [(choice, status_title(choice)) for choice in await runtime.leads.choices(user_id)]


def oauth_offered(runtime: Runtime) -> dict[str, bool]:
    """Which providers can be linked with a click: those the operator registered an app
    for."""
    settings = runtime.settings
    return {"outlook": bool(settings.microsoft_client_id), "gmail": bool(settings.google_client_id)}


def mailbox_context(runtime: Runtime, mailboxes: Sequence[Mailbox]) -> dict[str, Any]:
    """What the pages showing the first steps need (macros.html): the user's mailboxes,
    the providers that link with a click, and the tracking warning."""
    warning = tracking_warning(runtime, mailboxes)
    return {"mailboxes": mailboxes, "oauth": oauth_offered(runtime), "warning": warning}


def tracking_warning(runtime: Runtime, mailboxes: Sequence[Mailbox]) -> str | None:
    """What to tell a user whose real mailboxes would send links nobody can open: the
    public base URL is this machine's or a private network's (fine for the demo)."""
    reason = unreachable_for_recipients(runtime.settings.public_base_url)
    if reason is None or not any(not box.is_demo for box in mailboxes):
        return None
    return (
        f"Tracking and unsubscribe links point at {runtime.settings.public_base_url}: "
        f"{reason}, so the people you email cannot open them. Ask your operator to set "
        "MAILRAMP_PUBLIC_BASE_URL to the address people reach this server at."
    )
