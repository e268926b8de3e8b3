"""The mailboxes pages: list, link, edit, test and the status buttons."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailramp.errors import MailboxTestFailed, MailrampError, NotFoundError
from mailramp.mailboxes.models import Mailbox, MailboxDay
from mailramp.mailboxes.tracking_domain import public_host
from mailramp.metrics.models import percent
from mailramp.web.charts import DayFigures, health_chart
from mailramp.web.dashboard import (
    PageUser,
    PageUserDep,
    check_csrf,
    form_errors,
    mailbox_context,
    read_form,
    render,
    render_section,
)
from mailramp.web.deps import RuntimeDep

router = APIRouter(include_in_schema=False)


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
    refused: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    boxes = await runtime.mailboxes.list_mailboxes(who.user.user_id)
    fresh = {"smtp_security": "starttls"}
    if not runtime.settings.ramp_new_mailboxes:
        fresh["already_warm"] = "on"
    form = {"values": values or fresh, "errors": errors or {}}
    results = {"checks": checks or {}, "refused": refused or {}}
    shown = mailbox_context(runtime, boxes)
    return render_section(request, who, "mailboxes", status=status, **form, **results, **shown)


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
    form = await read_form(request)
    check_csrf(who, form)
    fields: dict[str, Any] = {
        name: form[name].strip() for name in MAILBOX_FIELDS if form.get(name, "").strip()
    }
    fields["provider"] = "smtp"
    fields["already_warm"] = "already_warm" in form
    _imap_security_as_for_smtp(fields)
    try:
        await runtime.mailboxes.create_mailbox(who.user.user_id, **fields)
    except MailrampError as error:
        kept = {
            k: v
            for k, v in form.items()
            if k in (*MAILBOX_FIELDS, "already_warm") and k != "password"
        }
        return await _mailboxes_page(
            request,
            who,
            runtime,
            values=kept,
            errors=form_errors(error, MAILBOX_FIELDS),
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
    check_csrf(who, await read_form(request))
    results = await runtime.check_mailbox(who.user.user_id, mailbox_id)
    return await _mailboxes_page(request, who, runtime, checks={mailbox_id: results})


RAMP_FIELDS = ("ramp_start", "ramp_step")


def _edit_values(mailbox: Mailbox) -> dict[str, str]:
    names = (*EDIT_FIELDS, *RAMP_FIELDS)
    values = {name: getattr(mailbox, name, None) for name in names if name != "password"}
    shown = {name: "" if value is None else str(value) for name, value in values.items()}
    if mailbox.already_warm:
        shown["already_warm"] = "on"
    return shown


@router.get("/mailboxes/{mailbox_id}/edit")
async def edit_mailbox_page(
    mailbox_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> HTMLResponse:
    mailbox = await runtime.mailboxes.get_mailbox(who.user.user_id, mailbox_id)
    return _edit_form(request, who, runtime, mailbox, values=_edit_values(mailbox), errors={})


def _edit_form(
    request: Request, who: PageUser, runtime: RuntimeDep, mailbox: Mailbox, **form: Any
) -> HTMLResponse:
    """The edit form of one mailbox and its tracking domain (`values`, `domain_values`,
    `errors`, `status`: what was typed, each error beside its field)."""
    form.setdefault("domain_values", {"tracking_domain": mailbox.tracking_domain or ""})
    target = public_host(runtime.settings.public_base_url)
    return render(
        request,
        "mailbox_edit.html",
        who=who,
        section="mailboxes",
        mailbox=mailbox,
        public_host=target,
        **form,
    )


@router.post("/mailboxes/{mailbox_id}/tracking-domain")
async def set_tracking_domain(
    mailbox_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    """Save (and check in DNS) the mailbox's tracking domain; empty removes it. The page
    comes back with what the check found."""
    form = await read_form(request)
    check_csrf(who, form)
    typed = form.get("tracking_domain", "")
    user_id = who.user.user_id
    try:
        mailbox = await runtime.mailboxes.set_tracking_domain(user_id, mailbox_id, typed)
    except MailrampError as error:
        mailbox = await runtime.mailboxes.get_mailbox(user_id, mailbox_id)
        return _edit_form(
            request,
            who,
            runtime,
            mailbox,
            values=_edit_values(mailbox),
            domain_values={"tracking_domain": typed},
            errors=form_errors(error, ("tracking_domain",)),
            status=error.status_code,
        )
    return RedirectResponse(f"/mailboxes/{mailbox.id}/edit#tracking-domain", status_code=303)


@router.post("/mailboxes/{mailbox_id}/edit")
async def edit_mailbox(
    mailbox_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    """Change the mailbox's settings; an empty password keeps the stored one. An emptied
    optional field (sender name, login, IMAP host or port) is cleared."""
    form = await read_form(request)
    check_csrf(who, form)
    mailbox = await runtime.mailboxes.get_mailbox(who.user.user_id, mailbox_id)
    editable = EDIT_FIELDS if mailbox.provider == "smtp" else ("display_name", "daily_limit")
    editable = (*editable, *RAMP_FIELDS)
    fields: dict[str, Any] = {"already_warm": "already_warm" in form}
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
        kept = {k: v for k, v in form.items() if k in editable and k != "password"}
        if "already_warm" in form:
            kept["already_warm"] = "on"
        errors = form_errors(error, editable)
        return _edit_form(
            request, who, runtime, mailbox, values=kept, errors=errors, status=error.status_code
        )
    return RedirectResponse("/mailboxes", status_code=303)


@router.get("/mailboxes/{mailbox_id}/health")
async def mailbox_health_page(
    mailbox_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> HTMLResponse:
    """The mailbox's health: its brake, its figures over 7 and 30 days with the chart of
    its last 30, its ramp, and its domain's DNS checks with the records to publish."""
    return await _health_page(request, who, runtime, mailbox_id)


async def _health_page(
    request: Request,
    who: PageUser,
    runtime: RuntimeDep,
    mailbox_id: str,
    *,
    values: dict[str, str] | None = None,
    warmup_values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    health = await runtime.deliverability.health(who.user.user_id, mailbox_id)
    mailbox = health.mailbox
    selectors = {"dkim_selectors": " ".join(mailbox.dkim_selectors)}
    rows = await runtime.deliverability.warmup_status(who.user.user_id)
    shown = {name: str(getattr(mailbox, name)) for name in WARMUP_FIELDS}
    if mailbox.warmup_enabled:
        shown["warmup_enabled"] = "on"
    return render(
        request,
        "mailbox_health.html",
        who=who,
        section="mailboxes",
        mailbox=mailbox,
        health=health,
        chart=health_chart(_chart_days(health.history, runtime.clock())),
        values=values or selectors,
        warmup_values=warmup_values or shown,
        warmup_row=next((row for row in rows if row.mailbox_id == mailbox.id), None),
        errors=errors or {},
        status=status,
    )


def _chart_days(history: list[MailboxDay], now: datetime) -> list[DayFigures]:
    """The last 30 UTC days to today, days without a row as zeros (from the first row on)."""
    if not history:
        return []
    rows = {day.day: day for day in history}
    today = now.astimezone(UTC).date()
    first = max(today - timedelta(days=29), date.fromisoformat(history[0].day))
    shown = []
    for offset in range((today - first).days + 1):
        key = (first + timedelta(days=offset)).isoformat()
        row = rows.get(key)
        found = (row.warmup_inbox + row.warmup_spam + row.warmup_other) if row else 0
        shown.append(
            DayFigures(
                day=key,
                campaign_sent=row.campaign_sent if row else 0,
                warmup_sent=row.warmup_sent if row else 0,
                placement=percent(row.warmup_inbox, found) if row and found else None,
                daily_limit=row.daily_limit if row else None,
            )
        )
    return shown


@router.post("/mailboxes/{mailbox_id}/dns-check")
async def check_mailbox_domain(
    mailbox_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    """Check the domain in DNS now; with `dkim_selectors` in the form, save them first."""
    form = await read_form(request)
    check_csrf(who, form)
    user_id = who.user.user_id
    if "dkim_selectors" in form:
        typed = form["dkim_selectors"]
        try:
            await runtime.mailboxes.update_mailbox(
                user_id, mailbox_id, dkim_selectors=typed.replace(",", " ").split()
            )
        except MailrampError as error:
            return await _health_page(
                request,
                who,
                runtime,
                mailbox_id,
                values={"dkim_selectors": typed},
                errors={"dkim_selectors": error.detail},
                status=error.status_code,
            )
    await runtime.mailboxes.check_domain(user_id, mailbox_id)
    return RedirectResponse(f"/mailboxes/{mailbox_id}/health#dns", status_code=303)


WARMUP_FIELDS = ("warmup_max", "warmup_reply_percent", "warmup_timezone")


@router.post("/mailboxes/{mailbox_id}/warmup")
async def save_warmup(
    mailbox_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    """Join or leave the warm-up pool, and its settings."""
    form = await read_form(request)
    check_csrf(who, form)
    fields: dict[str, Any] = {"warmup_enabled": "warmup_enabled" in form}
    fields |= {name: form[name].strip() for name in WARMUP_FIELDS if form.get(name, "").strip()}
    try:
        await runtime.mailboxes.update_mailbox(who.user.user_id, mailbox_id, **fields)
    except MailrampError as error:
        typed = {name: form.get(name, "") for name in WARMUP_FIELDS}
        if "warmup_enabled" in form:
            typed["warmup_enabled"] = "on"
        return await _health_page(
            request,
            who,
            runtime,
            mailbox_id,
            warmup_values=typed,
            errors=form_errors(error, WARMUP_FIELDS),
            status=error.status_code,
        )
    return RedirectResponse(f"/mailboxes/{mailbox_id}/health#warmup", status_code=303)


@router.post("/mailboxes/{mailbox_id}/resume-sending")
async def resume_mailbox_sending(
    mailbox_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    """Lift the brake on the mailbox's campaign sends."""
    check_csrf(who, await read_form(request))
    await runtime.deliverability.resume_mailbox(who.user.user_id, mailbox_id)
    return RedirectResponse(f"/mailboxes/{mailbox_id}/health", status_code=303)


@router.post("/mailboxes/{mailbox_id}/{action}")
async def mailbox_action(
    mailbox_id: str, action: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    check_csrf(who, await read_form(request))
    user_id = who.user.user_id
    try:
        if action == "primary":
            await runtime.mailboxes.set_primary(user_id, mailbox_id)
        elif action == "activate":
            await runtime.activate_mailbox(user_id, mailbox_id)
        else:
            await runtime.mailboxes.apply_action(user_id, mailbox_id, action)
    except NotFoundError:
        return HTMLResponse("Not found", status_code=404)
    except MailboxTestFailed as error:
        # Not activated: the row says why, with what the test found.
        return await _mailboxes_page(
            request,
            who,
            runtime,
            checks={mailbox_id: error.results},
            refused={mailbox_id: error.detail},
            status=409,
        )
    return RedirectResponse("/mailboxes", status_code=303)
