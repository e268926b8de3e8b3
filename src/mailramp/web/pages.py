"""The dashboard: server-rendered pages (Jinja2, autoescaped) on the same services as the
API. Forms carry the session's CSRF token; errors show next to their field and keep what
was typed."""

from __future__ import annotations

import contextlib
import hmac
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from mailramp.accounts.models import User
from mailramp.auth.models import Session
from mailramp.campaigns import templates
from mailramp.errors import (
    AuthenticationError,
    BusyError,
    ConflictError,
    ForbiddenError,
    MailrampError,
    NotFoundError,
    TooManyAttemptsError,
)
from mailramp.errors import ValidationError as DomainValidationError
from mailramp.kit.ids import is_object_id
from mailramp.mailboxes.models import Mailbox
from mailramp.runtime import Runtime
from mailramp.sending.importer import check_file
from mailramp.tracking.models import TrackingStatus
from mailramp.web.charts import events_chart
from mailramp.web.deps import (
    CONTENT_SECURITY_POLICY,
    CSRF_COOKIE,
    SESSION_COOKIE,
    RuntimeDep,
    clerk_user,
    same_origin,
    set_session_cookies,
)

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

router = APIRouter(include_in_schema=False)


def _localtime(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return ""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


TEMPLATES.filters["localtime"] = _localtime


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


def _zone(request: Request) -> ZoneInfo:
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
    """A page, with the user, their CSRF token and time zone in its context."""
    html = TEMPLATES.get_template(template).render(
        user=who.user if who else None,
        csrf_token=who.session.csrf_token if who else "",
        zone=_zone(request),
        **context,
    )
    return HTMLResponse(html, status_code=status)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _check_csrf(who: PageUser, form: dict[str, str]) -> None:
    if not hmac.compare_digest(
        form.get("csrf_token", "").encode(), who.session.csrf_token.encode()
    ):
        raise ForbiddenError("the form expired or came from another site; reload the page")


# -- sign-in ------------------------------------------------------------------------------


@router.get("/")
async def home(request: Request) -> Response:
    """The campaigns page, or sign-in."""
    target = "/campaigns" if request.cookies.get(SESSION_COOKIE) else "/signin"
    return RedirectResponse(target, status_code=303)


def _signin_form(
    request: Request,
    runtime: Runtime,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> HTMLResponse:
    front = runtime.clerk_frontend
    response = render(
        request,
        "signin.html",
        mode="signin",
        values=values,
        errors=errors,
        status=status,
        signup_open=runtime.settings.signup_open,
        clerk=front,
    )
    if front is not None:
        # Only this page runs Clerk's components; every other page keeps the strict policy.
        policy = front.content_security_policy(CONTENT_SECURITY_POLICY)
        response.headers["Content-Security-Policy"] = policy
    return response


@router.get("/signin")
async def signin_page(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    return _signin_form(request, runtime, values={}, errors={})


@router.post("/signin/clerk")
async def signin_with_clerk(request: Request, runtime: RuntimeDep) -> Response:
    """Trade a Clerk session token (Authorization: Bearer, sent by /static/clerk.js) for a
    dashboard session. A bearer header cannot be attached by a cross-site form, and the
    origin is checked as well."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if runtime.clerk is None:
        raise AuthenticationError("Clerk sign-in is not configured on this server")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("send the Clerk session token as 'Authorization: Bearer …'")
    if not same_origin(request, runtime):
        raise ForbiddenError("cross-origin request refused")
    user = await clerk_user(runtime, token.strip())
    await runtime.accounts.record_login(user.user_id)
    new = await runtime.auth.start_session(user, request.headers.get("user-agent"))
    response = JSONResponse({"redirect": "/campaigns"})
    set_session_cookies(response, request, new)
    return response


@router.get("/signup")
async def signup_page(request: Request) -> HTMLResponse:
    return render(request, "signin.html", mode="signup", values={}, errors={})


@router.post("/signin")
async def signin(request: Request, runtime: RuntimeDep) -> Response:
    form = await _form(request)
    values = {"login_id": form.get("login_id", "")}
    try:
        new = await runtime.auth.log_in(
            form.get("login_id", ""),
            form.get("password", ""),
            user_agent=request.headers.get("user-agent"),
            client_address=request.client.host if request.client else None,
        )
    except (AuthenticationError, TooManyAttemptsError, BusyError) as error:
        return _signin_form(
            request,
            runtime,
            values=values,
            errors={"form": error.message},
            status=error.status_code,
        )
    response = RedirectResponse("/campaigns", status_code=303)
    set_session_cookies(response, request, new)
    return response


@router.post("/signup")
async def signup(request: Request, runtime: RuntimeDep) -> Response:
    form = await _form(request)
    values = {k: form.get(k, "") for k in ("user_name", "login_id")}
    try:
        new = await runtime.auth.sign_up(
            user_name=form.get("user_name", ""),
            login_id=form.get("login_id", ""),
            password=form.get("password", ""),
            user_agent=request.headers.get("user-agent"),
        )
    except (DomainValidationError, ConflictError, ForbiddenError) as error:
        return render(
            request,
            "signin.html",
            mode="signup",
            values=values,
            errors=_form_errors(error, ("user_name", "login_id", "password")),
            status=error.status_code,
        )
    response = RedirectResponse("/mailboxes", status_code=303)
    set_session_cookies(response, request, new)
    return response


@router.post("/signout")
async def signout(request: Request, who: PageUserDep, runtime: RuntimeDep) -> Response:
    _check_csrf(who, await _form(request))
    await runtime.auth.log_out(who.session)
    # With Clerk, its own session ends too (clerk.js signs out when it sees this flag).
    target = "/signin?signed_out=1" if runtime.clerk_frontend else "/signin"
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


# -- mailboxes ----------------------------------------------------------------------------

MAILBOX_FIELDS = (
    "email",
    "display_name",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_username",
    "password",
    "daily_limit",
    "imap_host",
    "imap_port",
    "imap_security",
)
# What the edit form changes: the address and the kind of mailbox stay.
EDIT_FIELDS = tuple(name for name in MAILBOX_FIELDS if name != "email")


async def _mailboxes_page(
    request: Request,
    who: PageUser,
    runtime: RuntimeDep,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    checks: dict[str, dict[str, dict[str, object]]] | None = None,
    status: int = 200,
) -> HTMLResponse:
    boxes = await runtime.mailboxes.list_mailboxes(who.user.user_id)
    settings = runtime.settings
    return render(
        request,
        "mailboxes.html",
        who=who,
        section="mailboxes",
        mailboxes=boxes,
        oauth={
            "outlook": bool(settings.microsoft_client_id),
            "gmail": bool(settings.google_client_id),
        },
        values=values or {"smtp_security": "starttls"},
        errors=errors or {},
        checks=checks or {},
        status=status,
    )


@router.get("/mailboxes")
async def mailboxes_page(request: Request, who: PageUserDep, runtime: RuntimeDep) -> HTMLResponse:
    return await _mailboxes_page(request, who, runtime)


@router.get("/mailboxes/connect/{provider}")
async def connect_mailbox(
    provider: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    """Send the browser to Microsoft's or Google's consent page; the provider sends it back
    to the API's OAuth callback, which returns here. A link, not a form: the policy's
    form-action 'self' would stop a form's redirect to the provider. Starting changes
    nothing (the state is sealed, not stored), so a forged click links nothing."""
    try:
        url = runtime.oauth.start(provider, who.user.user_id)
    except MailrampError as error:
        return await _mailboxes_page(
            request, who, runtime, errors={"oauth": error.message}, status=error.status_code
        )
    return RedirectResponse(url, status_code=303)


@router.post("/mailboxes")
async def link_mailbox(request: Request, who: PageUserDep, runtime: RuntimeDep) -> Response:
    form = await _form(request)
    _check_csrf(who, form)
    fields: dict[str, Any] = {
        name: form[name].strip() for name in MAILBOX_FIELDS if form.get(name, "").strip()
    }
    fields["provider"] = "smtp"
    _imap_security_as_for_smtp(fields)
    try:
        await runtime.mailboxes.create_mailbox(who.user.user_id, **fields)
    except MailrampError as error:
        kept = {k: v for k, v in form.items() if k in MAILBOX_FIELDS and k != "password"}
        return await _mailboxes_page(
            request,
            who,
            runtime,
            values=kept,
            errors=_form_errors(error, MAILBOX_FIELDS),
            status=error.status_code,
        )
    return RedirectResponse("/mailboxes", status_code=303)


def _imap_security_as_for_smtp(fields: dict[str, Any]) -> None:
    """ "As for SMTP" (no choice made): implicit TLS when SMTP uses it or is STARTTLS on a
    normal server, plain only with a plain SMTP server (a local test server)."""
    if fields.get("imap_host") and not fields.get("imap_security"):
        smtp = fields.get("smtp_security")
        fields["imap_security"] = (
            "plain" if smtp == "plain" else "tls" if smtp == "tls" else "starttls"
        )


@router.post("/mailboxes/{mailbox_id}/test")
async def test_mailbox(
    mailbox_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> HTMLResponse:
    """Log in to the mailbox's servers (or API) and show what each answered, on its row."""
    _check_csrf(who, await _form(request))
    results = await runtime.check_mailbox(who.user.user_id, mailbox_id)
    return await _mailboxes_page(request, who, runtime, checks={mailbox_id: results})


def _edit_values(mailbox: Mailbox) -> dict[str, str]:
    values = {name: getattr(mailbox, name, None) for name in EDIT_FIELDS if name != "password"}
    return {name: "" if value is None else str(value) for name, value in values.items()}


@router.get("/mailboxes/{mailbox_id}/edit")
async def edit_mailbox_page(
    mailbox_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> HTMLResponse:
    mailbox = await runtime.mailboxes.get_mailbox(who.user.user_id, mailbox_id)
    return render(
        request,
        "mailbox_edit.html",
        who=who,
        section="mailboxes",
        mailbox=mailbox,
        values=_edit_values(mailbox),
        errors={},
    )


@router.post("/mailboxes/{mailbox_id}/edit")
async def edit_mailbox(
    mailbox_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    """Change the mailbox's settings; an empty password keeps the stored one. An emptied
    optional field (sender name, login, IMAP host or port) is cleared."""
    form = await _form(request)
    _check_csrf(who, form)
    mailbox = await runtime.mailboxes.get_mailbox(who.user.user_id, mailbox_id)
    editable = EDIT_FIELDS if mailbox.provider == "smtp" else ("display_name", "daily_limit")
    fields: dict[str, Any] = {}
    for name in editable:
        value = form.get(name, "").strip()
        if value:
            fields[name] = value
        elif name in ("display_name", "smtp_username", "imap_host", "imap_port", "imap_security"):
            fields[name] = None
    if mailbox.provider == "smtp":
        _imap_security_as_for_smtp(fields)
        if not fields.get("imap_host"):
            fields["imap_port"] = fields["imap_security"] = None
    try:
        await runtime.mailboxes.update_mailbox(who.user.user_id, mailbox_id, **fields)
    except MailrampError as error:
        kept = {k: v for k, v in form.items() if k in EDIT_FIELDS and k != "password"}
        return render(
            request,
            "mailbox_edit.html",
            who=who,
            section="mailboxes",
            mailbox=mailbox,
            values=kept,
            errors=_form_errors(error, EDIT_FIELDS),
            status=error.status_code,
        )
    return RedirectResponse("/mailboxes", status_code=303)


@router.post("/mailboxes/{mailbox_id}/{action}")
async def mailbox_action(
    mailbox_id: str, action: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    _check_csrf(who, await _form(request))
    if action == "primary":
        await runtime.mailboxes.set_primary(who.user.user_id, mailbox_id)
    elif action in ("pause", "activate"):
        status = "inactive" if action == "pause" else "active"
        await runtime.mailboxes.set_status(who.user.user_id, mailbox_id, status)
    else:
        return HTMLResponse("Not found", status_code=404)
    return RedirectResponse("/mailboxes", status_code=303)


# -- campaigns ----------------------------------------------------------------------------


@router.get("/campaigns")
async def campaigns_page(request: Request, who: PageUserDep, runtime: RuntimeDep) -> HTMLResponse:
    page = await runtime.campaigns.list_campaigns(who.user.user_id, limit=100)
    rows = [
        {
            "campaign": campaign,
            "metrics": await runtime.metrics.get_campaign_metrics(
                campaign.campaign_id, user_id=who.user.user_id
            ),
        }
        for campaign in page.items
    ]
    has_mailbox = bool(await runtime.mailboxes.list_mailboxes(who.user.user_id))
    return render(
        request, "campaigns.html", who=who, section="campaigns", rows=rows, has_mailbox=has_mailbox
    )


# -- new campaign and campaign detail -----------------------------------------------------

CAMPAIGN_FIELDS = (
    "campaign_name",
    "mailbox_id",
    "subject",
    "message",
    "message_format",
    "start_time",
    "duration",
)


@router.get("/campaigns/new")
async def new_campaign_page(
    request: Request, who: PageUserDep, runtime: RuntimeDep
) -> HTMLResponse:
    boxes = await runtime.mailboxes.list_mailboxes(who.user.user_id)
    return render(
        request,
        "campaign_new.html",
        who=who,
        section="campaigns",
        mailboxes=boxes,
        values={"duration": "72"},
        errors={},
    )


def _form_errors(error: MailrampError, known: tuple[str, ...]) -> dict[str, str]:
    """The error placed next to its field when the form has one, else above the form."""
    field, message = error.field or "form", error.detail
    if field == "total_recipients" and "file" in known:
        field = "file"  # the recipients do not fit: the upload is what to change
    return {field if field in known else "form": message}


@router.post("/campaigns/new")
async def create_campaign(request: Request, who: PageUserDep, runtime: RuntimeDep) -> Response:
    form = await request.form()
    values = {name: str(form.get(name) or "") for name in CAMPAIGN_FIELDS}
    _check_csrf(who, {"csrf_token": str(form.get("csrf_token") or "")})
    boxes = await runtime.mailboxes.list_mailboxes(who.user.user_id)

    def again(errors: dict[str, str], status: int) -> HTMLResponse:
        return render(
            request,
            "campaign_new.html",
            who=who,
            section="campaigns",
            mailboxes=boxes,
            values=values,
            errors=errors,
            status=status,
        )

    upload = form.get("recipients")
    stream = None
    if upload is not None and not isinstance(upload, str) and upload.filename:
        stream = upload.file

    def refused(error: MailrampError) -> HTMLResponse:
        errors = _form_errors(error, (*CAMPAIGN_FIELDS, "file"))
        if stream is not None:
            # A browser cannot put a file back into a file input: say so, and that the
            # campaign does not exist yet (there is no half-made draft to look for).
            note = "Nothing was created: correct what is marked, then choose the file again."
            errors["form"] = f"{errors['form']} {note}" if "form" in errors else note
        return again(errors, error.status_code)

    try:
        start = datetime.fromisoformat(values["start_time"]).replace(tzinfo=_zone(request))
    except ValueError:
        return again({"start_time": "choose a date and time"}, 422)
    recipients = 0
    if stream is not None:
        # All or nothing: the file is read through before the campaign is created, so a
        # file the import would refuse creates nothing, and the recipients it holds are
        # declared at creation, which refuses a campaign they would not fit.
        try:
            checked = await run_in_threadpool(
                check_file, stream, subject=values["subject"], message=values["message"]
            )
        except MailrampError as error:
            return refused(error)
        recipients = checked.accepted
        stream.seek(0)
    try:
        campaign = await runtime.campaigns.create_campaign(
            who.user.user_id,
            campaign_name=values["campaign_name"],
            mailbox_id=values["mailbox_id"],
            subject=values["subject"],
            message=values["message"],
            start_time=start,
            message_format=values["message_format"] or "text",
            duration=values["duration"] or "0",
            total_recipients=recipients,
        )
    except MailrampError as error:
        return refused(error)
    if stream is not None:
        return await _import(request, who, runtime, campaign.campaign_id, stream, created=True)
    return RedirectResponse(f"/campaigns/{campaign.campaign_id}", status_code=303)


async def _import(
    request: Request,
    who: PageUser,
    runtime: RuntimeDep,
    campaign_id: str,
    stream: Any,
    *,
    created: bool = False,
) -> Response:
    try:
        report = await runtime.sending.import_recipients(who.user.user_id, campaign_id, stream)
    except MailrampError as error:
        problem = error.message
        if created:
            # Only a change between the check and the import (another campaign taking the
            # mailbox's capacity) lands here: the campaign exists, empty, and says so.
            problem = (
                f"The campaign was created, but its recipients were not imported: {problem}. "
                "Upload a corrected file below."
            )
        return await _campaign_page(
            request, who, runtime, campaign_id, problem=problem, status=error.status_code
        )
    notice = report.summary()
    if report.invalid:
        first = report.invalid[0]
        notice += f" (first invalid: row {first.row}, {first.value!r}: {first.reason})"
    # Post/redirect/get: reloading the page must not upload again.
    return RedirectResponse(f"/campaigns/{campaign_id}?{urlencode({'notice': notice})}", 303)


@router.post("/campaigns/{campaign_id}/recipients")
async def upload_recipients(
    campaign_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    form = await request.form()
    _check_csrf(who, {"csrf_token": str(form.get("csrf_token") or "")})
    upload = form.get("recipients")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return await _campaign_page(
            request, who, runtime, campaign_id, problem="choose a CSV file to upload", status=422
        )
    return await _import(request, who, runtime, campaign_id, upload.file)


@router.post("/campaigns/{campaign_id}/{action}")
async def campaign_action(
    campaign_id: str, action: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    _check_csrf(who, await _form(request))
    actions = {
        "pause": runtime.campaigns.pause,
        "resume": runtime.campaigns.resume,
        "cancel": runtime.campaigns.cancel,
    }
    if action not in actions:
        return HTMLResponse("Not found", status_code=404)
    try:
        await actions[action](who.user.user_id, campaign_id)
    except MailrampError as error:
        return await _campaign_page(
            request, who, runtime, campaign_id, problem=error.message, status=error.status_code
        )
    return RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)


@router.get("/campaigns/{campaign_id}")
async def campaign_page(
    campaign_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> HTMLResponse:
    notice = request.query_params.get("notice")
    return await _campaign_page(request, who, runtime, campaign_id, notice=notice)


async def _campaign_page(
    request: Request,
    who: PageUser,
    runtime: RuntimeDep,
    campaign_id: str,
    *,
    notice: str | None = None,
    problem: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    user_id = who.user.user_id
    campaign = await runtime.campaigns.get_campaign(user_id, campaign_id)
    metrics = await runtime.metrics.get_campaign_metrics(campaign.campaign_id, user_id=user_id)
    mailbox = await runtime.mailboxes.get_mailbox(user_id, campaign.mailbox_id)
    wanted = request.query_params.get("status") or None
    known = {member.value for member in TrackingStatus}
    recipients = await runtime.tracking.list_recipients(
        user_id, campaign.campaign_id, status=wanted if wanted in known else None, limit=200
    )
    events = None
    record_id = request.query_params.get("record")
    if record_id and is_object_id(record_id):
        with contextlib.suppress(NotFoundError):
            _, events = await runtime.tracking.recipient_events(
                user_id, campaign.campaign_id, record_id
            )
    counts = await runtime.sending.status_counts(user_id, campaign.campaign_id)
    preview = None
    first = recipients.items[0] if recipients.items else None
    if first is not None:
        values = first.merge_values()
        preview = {
            "recipient": first.recipient_email,
            "subject": templates.render_header(campaign.subject, values),
            "body": templates.render(campaign.message, values),
        }
    actions = [
        a
        for a, allowed in (
            ("pause", campaign.status in ("scheduled", "active")),
            ("resume", campaign.status == "paused"),
            ("cancel", campaign.status not in ("completed", "cancelled")),
        )
        if allowed
    ]
    series = await runtime.tracking.series(user_id, campaign.campaign_id)
    return render(
        request,
        "campaign.html",
        who=who,
        section="campaigns",
        campaign=campaign,
        metrics=metrics,
        mailbox_email=mailbox.email,
        mailbox_stopped=(
            mailbox.status_reason or "the mailbox is not active"
            if mailbox.status != "active" and campaign.status in ("scheduled", "active")
            else None
        ),
        recipients=recipients,
        events=events,
        status_filter=wanted if wanted in known else "",
        statuses=[s.value for s in TrackingStatus],
        preview=preview,
        plan=_plan_summary(campaign, counts, _zone(request)),
        actions=actions,
        chart=events_chart(series),
        notice=notice,
        problem=problem,
        status=status,
    )


def _plan_summary(campaign: Any, counts: dict[str, int], zone: ZoneInfo) -> str:
    total = sum(counts.values())
    if not total:
        return "No recipients yet."
    days = max((campaign.end_time - campaign.start_time).total_seconds() / 86400, 1 / 24)
    per_day = total / max(days, 1)
    return (
        f"{total} emails from {_localtime(campaign.start_time, zone)} to "
        f"{_localtime(campaign.end_time, zone)}, about {per_day:.0f} per day; "
        f"{counts.get('sent', 0)} sent, {counts.get('pending', 0)} waiting."
    )


# -- suppression list and API keys --------------------------------------------------------


async def _settings_page(
    request: Request,
    who: PageUser,
    runtime: RuntimeDep,
    *,
    new_key: str | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    suppressions = await runtime.suppression.list_suppressions(who.user.user_id, limit=500)
    keys = await runtime.auth.list_api_keys(who.user.user_id)
    return render(
        request,
        "settings.html",
        who=who,
        section="settings",
        suppressions=suppressions,
        keys=keys,
        new_key=new_key,
        values=values or {},
        errors=errors or {},
        status=status,
    )


@router.get("/settings")
async def settings_page(request: Request, who: PageUserDep, runtime: RuntimeDep) -> HTMLResponse:
    return await _settings_page(request, who, runtime)


@router.post("/settings/suppressions")
async def suppress(request: Request, who: PageUserDep, runtime: RuntimeDep) -> Response:
    form = await _form(request)
    _check_csrf(who, form)
    try:
        await runtime.suppression.add(who.user.user_id, form.get("email", ""))
    except DomainValidationError as error:
        return await _settings_page(
            request,
            who,
            runtime,
            values={"email": form.get("email", "")},
            errors={error.field: error.detail},
            status=422,
        )
    return RedirectResponse("/settings", status_code=303)


@router.post("/settings/suppressions/remove")
async def unsuppress(request: Request, who: PageUserDep, runtime: RuntimeDep) -> Response:
    form = await _form(request)
    _check_csrf(who, form)
    with contextlib.suppress(NotFoundError):
        await runtime.suppression.remove(who.user.user_id, form.get("email", ""))
    return RedirectResponse("/settings", status_code=303)


@router.post("/settings/api-keys")
async def create_key(request: Request, who: PageUserDep, runtime: RuntimeDep) -> Response:
    form = await _form(request)
    _check_csrf(who, form)
    try:
        _, secret = await runtime.auth.create_api_key(who.user.user_id, name=form.get("name", ""))
    except MailrampError as error:
        return await _settings_page(
            request,
            who,
            runtime,
            values={"name": form.get("name", "")},
            errors={error.field or "name": error.detail},
            status=error.status_code,
        )
    # Shown once, on this response only (no redirect that could put it in a URL).
    return await _settings_page(request, who, runtime, new_key=secret)


@router.post("/settings/api-keys/{key_id}/revoke")
async def revoke_key(
    key_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    _check_csrf(who, await _form(request))
    await runtime.auth.revoke_api_key(who.user.user_id, key_id)
    return RedirectResponse("/settings", status_code=303)
