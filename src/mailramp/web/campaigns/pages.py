"""The campaigns pages: the list, a new campaign, one campaign with its recipients."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mailramp.campaigns.models import FINAL_STATUSES, SENDING_STATUSES, campaign_actions
from mailramp.campaigns.repository import PendingSchedule
from mailramp.campaigns.sequencing import DayLoad
from mailramp.conversations.models import shown_status, status_title
from mailramp.errors import MailrampError, NotFoundError
from mailramp.kit.ids import is_object_id
from mailramp.mailboxes.models import Mailbox
from mailramp.metrics.models import CampaignMetrics
from mailramp.sending.importer import check_file
from mailramp.tracking.models import TrackingStatus
from mailramp.tracking.service import RecipientFilter
from mailramp.web.charts import events_chart
from mailramp.web.dashboard import (
    PageUser,
    PageUserDep,
    check_csrf,
    form_errors,
    lead_choices,
    localtime,
    mailbox_context,
    page_zone,
    read_form,
    render,
    render_section,
    tracking_warning,
)
from mailramp.web.deps import RuntimeDep

router = APIRouter(include_in_schema=False)


@router.get("/campaigns")
async def campaigns_page(request: Request, who: PageUserDep, runtime: RuntimeDep) -> HTMLResponse:
    page = await runtime.campaigns.list_campaigns(who.user.user_id, limit=100)
    # One query for every row's metrics, not one per campaign.
    metrics = await runtime.metrics.metrics_of(
        who.user.user_id, [campaign.campaign_id for campaign in page.items]
    )
    rows = []
    for campaign in page.items:
        found = metrics.get(campaign.campaign_id)
        figures = campaign.figures(found) if found else []
        rows.append({"campaign": campaign, "metrics": found, "figures": figures})
    boxes = await runtime.mailboxes.list_mailboxes(who.user.user_id)
    shown = mailbox_context(runtime, boxes)
    return render_section(request, who, "campaigns", rows=rows, has_mailbox=bool(boxes), **shown)


CAMPAIGN_FIELDS = (
    "campaign_name",
    "mailbox_id",
    "subject",
    "message",
    "message_format",
    "start_time",
    "duration",
    "track_opens",  # checkboxes: "on" when ticked, "" when not
    "track_clicks",
    "trap_link",
    "stop_company_on_reply",
    "auto_reply_postpone_days",
    *(f"variant_{part}_{n}" for n in (1, 2) for part in ("subject", "message")),
)
FOLLOW_UPS_ON_FORM = (2, 3, 4, 5)
"""The follow-up steps the new-campaign form offers (more through the API or the campaign
page's steps editor)."""
STEP_PARTS = ("days", "hours", "subject", "message", "variant_subject", "variant_message")
STEP_FIELDS = tuple(f"step_{n}_{part}" for n in FOLLOW_UPS_ON_FORM for part in STEP_PARTS)


@router.get("/campaigns/new")
async def new_campaign_page(
    request: Request, who: PageUserDep, runtime: RuntimeDep
) -> HTMLResponse:
    boxes = await runtime.mailboxes.list_mailboxes(who.user.user_id)
    return _new_campaign_form(request, who, runtime, boxes, values={"duration": "72"}, errors={})


def _new_campaign_form(
    request: Request, who: PageUser, runtime: RuntimeDep, boxes: list[Mailbox], **form: Any
) -> HTMLResponse:
    """The new-campaign form (`values`, `errors`, `status`: what was typed, each error
    beside its field)."""
    form.setdefault("also_from", [])
    form.setdefault("follow_up_numbers", FOLLOW_UPS_ON_FORM)
    return render(
        request,
        "campaign_new.html",
        who=who,
        section="campaigns",
        mailboxes=boxes,
        warning=tracking_warning(runtime, boxes),
        **form,
    )


@router.post("/campaigns/new")
async def create_campaign(request: Request, who: PageUserDep, runtime: RuntimeDep) -> Response:
    form = await request.form()
    values = {name: str(form.get(name) or "") for name in (*CAMPAIGN_FIELDS, *STEP_FIELDS)}
    check_csrf(who, {"csrf_token": str(form.get("csrf_token") or "")})
    boxes = await runtime.mailboxes.list_mailboxes(who.user.user_id)
    also = [str(item) for item in form.getlist("also_from")]
    # The chosen mailbox first; the ticked others after it, once each.
    mailbox_ids = [
        values["mailbox_id"],
        *dict.fromkeys(m for m in also if m != values["mailbox_id"]),
    ]

    def again(errors: dict[str, str], status: int) -> HTMLResponse:
        return _new_campaign_form(
            request,
            who,
            runtime,
            boxes,
            values=values,
            errors=errors,
            status=status,
            also_from=also,
        )

    upload = form.get("recipients")
    stream = None
    if upload is not None and not isinstance(upload, str) and upload.filename:
        stream = upload.file

    def refused(error: MailrampError) -> HTMLResponse:
        if error.field and error.field.startswith("variants."):
            error.field = "variants"  # a part of one variant: shown under the variants
        if error.field and error.field.startswith("campaign_steps"):
            error.field = "campaign_steps"  # a part of one follow-up: under the follow-ups
        shown = (*CAMPAIGN_FIELDS, "mailbox_ids", "variants", "campaign_steps", "file")
        errors = form_errors(error, shown)
        if stream is not None:
            # A browser cannot put a file back into a file input: say so, and that the
            # campaign does not exist yet (there is no half-made draft to look for).
            note = "Nothing was created: correct what is marked, then choose the file again."
            errors["form"] = f"{errors['form']} {note}" if "form" in errors else note
        return again(errors, error.status_code)

    try:
        start = datetime.fromisoformat(values["start_time"]).replace(tzinfo=page_zone(request))
    except ValueError:
        return again({"start_time": "choose a date and time"}, 422)
    recipients = 0
    if stream is not None:
        # All or nothing: the file is read through before the campaign is created, so a
        # file the import would refuse creates nothing, and the recipients it holds are
        # declared at creation, which refuses a campaign they would not fit.
        try:
            texts = [values["subject"], values["message"]]
            texts += [text for v in _variants_typed(values) for text in v.values()]
            texts += [
                text
                for step in _steps_typed(values)
                for wording in (step, *step.get("variants", []))
                for text in (wording.get("subject", ""), wording["message"])
            ]
            checked = await run_in_threadpool(check_file, stream, *texts)
        except MailrampError as error:
            return refused(error)
        recipients = checked.accepted
        stream.seek(0)
    try:
        campaign = await runtime.campaigns.create_campaign(
            who.user.user_id,
            campaign_name=values["campaign_name"],
            mailbox_ids=mailbox_ids,
            subject=values["subject"],
            message=values["message"],
            start_time=start,
            message_format=values["message_format"] or "text",
            duration=values["duration"] or "0",
            total_recipients=recipients,
            track_opens=values["track_opens"] == "on",
            track_clicks=values["track_clicks"] == "on",
            trap_link=values["trap_link"] == "on",
            stop_company_on_reply=values["stop_company_on_reply"] == "on",
            auto_reply_postpone_days=values["auto_reply_postpone_days"] or "0",
            variants=_variants_typed(values),
            campaign_steps=_steps_typed(values),
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
    check_csrf(who, {"csrf_token": str(form.get("csrf_token") or "")})
    upload = form.get("recipients")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return await _campaign_page(
            request, who, runtime, campaign_id, problem="choose a CSV file to upload", status=422
        )
    return await _import(request, who, runtime, campaign_id, upload.file)


@router.post("/campaigns/{campaign_id}/recipients/{record_id}/{action}")
async def recipient_action(
    campaign_id: str,
    record_id: str,
    action: str,
    request: Request,
    who: PageUserDep,
    runtime: RuntimeDep,
) -> Response:
    """A person's buttons under their timeline: stop them, mark that they replied, set their
    lead status."""
    form = await read_form(request)
    check_csrf(who, form)
    user_id = who.user.user_id
    actions = {"stop": runtime.tracking.stop, "replied": runtime.tracking.mark_replied}
    if action not in actions and action != "lead-status":
        return HTMLResponse("Not found", status_code=404)
    try:
        if action == "lead-status":
            wanted = form.get("status") or None
            person = await runtime.leads.set_status(
                user_id, campaign_id, record_id, wanted, source="dashboard"
            )
            shown = shown_status(person.lead_status)
            done, email = f"now has the lead status {shown}", person.recipient_email
        else:
            record = await actions[action](user_id, campaign_id, record_id)
            done = {"stop": "stopped", "replied": "marked as replied"}[action]
            email = record.recipient_email
    except MailrampError as error:
        return await _campaign_page(
            request, who, runtime, campaign_id, problem=error.message, status=error.status_code
        )
    back = urlencode({"notice": f"{email} {done}", "record": record_id})
    return RedirectResponse(f"/campaigns/{campaign_id}?{back}#record-{record_id}", 303)


@router.post("/campaigns/{campaign_id}/steps")
async def edit_steps(
    campaign_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    """The campaign page's steps editor: each follow-up kept, changed or removed, and one
    added (fields `step_<number>_…` and `step_new_…`)."""
    form = await request.form()
    check_csrf(who, {"csrf_token": str(form.get("csrf_token") or "")})
    user_id = who.user.user_id
    try:
        campaign = await runtime.campaigns.get_campaign(user_id, campaign_id)
        numbers = [follow_up.step for follow_up in campaign.campaign_steps]
        names = [f"step_{n}_{part}" for n in (*numbers, "new") for part in STEP_PARTS]
        values = {name: str(form.get(name) or "") for name in names}
        steps = []
        for number in numbers:
            kept = _steps_typed(values, [number])
            if kept and not form.get(f"step_{number}_remove"):
                steps.append({"step": number, **kept[0]})
        steps += _steps_typed(values, ["new"])
        changed = await runtime.sending.set_steps(user_id, campaign_id, campaign_steps=steps)
    except MailrampError as error:
        return await _campaign_page(
            request, who, runtime, campaign_id, problem=error.message, status=error.status_code
        )
    notice = f"Steps saved: the sequence has {len(changed.steps)} step(s)."
    return RedirectResponse(f"/campaigns/{campaign_id}?{urlencode({'notice': notice})}", 303)


@router.post("/campaigns/{campaign_id}/{action}")
async def campaign_action(
    campaign_id: str, action: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    check_csrf(who, await read_form(request))
    actions = {
        "pause": runtime.campaigns.pause,
        "resume": runtime.campaigns.resume,
        "cancel": runtime.campaigns.cancel,
    }
    if action not in actions:
        return HTMLResponse("Not found", status_code=404)
    # Only what the state machine offers from where the campaign is (a stale page's button
    # gets the same clear refusal as the API's).
    try:
        await actions[action](who.user.user_id, campaign_id)
    except MailrampError as error:
        return await _campaign_page(
            request, who, runtime, campaign_id, problem=error.message, status=error.status_code
        )
    return RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)


RECIPIENTS_PER_PAGE = 50

# What a previewed email may do in its frame: nothing. No script runs (the frame and this
# policy are sandboxed), nothing is fetched (images only as data: URLs, so no tracking
# pixel or remote image registers an open), links go nowhere; only this site may frame it.
PREVIEW_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)


@router.get("/campaigns/{campaign_id}/preview.html")
async def preview_frame(
    campaign_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    """One recipient's email (`?record=`, else the first) as its HTML part renders, for
    the campaign page's sandboxed frame; a text email shows as text."""
    record = request.query_params.get("record")
    wanted = record if record and is_object_id(record) else None
    links = runtime.tracking_links
    preview = await runtime.sending.preview(who.user.user_id, campaign_id, wanted, links)
    if preview is None:
        body = "<p>No recipients yet.</p>"
    elif preview.html is not None:
        body = preview.html
    else:
        body = f"<pre style='white-space:pre-wrap'>{escape(preview.text)}</pre>"
    headers = {"Content-Security-Policy": PREVIEW_POLICY, "X-Frame-Options": "SAMEORIGIN"}
    return HTMLResponse(body, headers=headers)


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
    mailboxes = [await runtime.mailboxes.get_mailbox(user_id, m) for m in campaign.mailbox_ids]
    query = request.query_params
    wanted = query.get("status") or None
    status_filter = wanted if wanted in {member.value for member in TrackingStatus} else None
    search = (query.get("search") or "").strip()[:254]
    offset = int(query["offset"]) if query.get("offset", "").isdigit() else 0
    # One row per person: their first email (the timeline below a row shows every step).
    shown = RecipientFilter(status_filter, search or None, offset, RECIPIENTS_PER_PAGE, step=1)
    recipients = await runtime.tracking.list_recipients(user_id, campaign.campaign_id, shown)
    events = None
    person_emails: list[Any] = []
    lead_status = None
    record_id = query.get("record")
    if record_id and is_object_id(record_id):
        with contextlib.suppress(NotFoundError):
            person, person_emails, events = await runtime.tracking.recipient_timeline(
                user_id, campaign.campaign_id, record_id
            )
            first = next((email for email in person_emails if email.step == 1), person)
            record_id = first.id  # the row it unfolds under
            lead_status = await runtime.leads.status_of(user_id, first)

    def page_link(*, offset: int, record: str | None = None) -> str:
        """This page's address with its filters, at another offset (or a record's events)."""
        kept = {"status": status_filter or "", "search": search, "offset": offset or ""}
        parameters = {name: value for name, value in kept.items() if value} | (
            {"record": record} if record else {}
        )
        return "?" + urlencode(parameters) if parameters else "?"

    loads = await runtime.campaigns.pending_by_day(user_id, campaign.campaign_id)
    steps = await runtime.campaigns.step_figures(user_id, campaign.campaign_id)
    counts = await runtime.sending.status_counts(user_id, campaign.campaign_id)
    waiting = await runtime.campaigns.pending_schedule(user_id, campaign.campaign_id)
    wanted_preview = request.query_params.get("preview")
    picked = wanted_preview if wanted_preview and is_object_id(wanted_preview) else None
    wanted_step = request.query_params.get("step", "")
    step = (
        int(wanted_step) if wanted_step.isdigit() and int(wanted_step) in campaign.steps else None
    )
    links = runtime.tracking_links
    try:
        preview = await runtime.sending.preview(
            user_id, campaign.campaign_id, picked, links, step=step
        )
    except NotFoundError:  # not this campaign's recipient: show the first
        preview = await runtime.sending.preview(
            user_id, campaign.campaign_id, None, links, step=step
        )
    series = await runtime.tracking.series(user_id, campaign.campaign_id)
    return render(
        request,
        "campaign.html",
        who=who,
        section="campaigns",
        campaign=campaign,
        metrics=metrics,
        figures=campaign.figures(metrics),
        warning=tracking_warning(runtime, mailboxes),
        senders=", ".join(mailbox.email for mailbox in mailboxes),
        mailboxes_stopped=[
            (mailbox.email, mailbox.status_reason or "the mailbox is not active")
            for mailbox in mailboxes
            if not mailbox.can_send and campaign.status in SENDING_STATUSES
        ],
        recipients=recipients,
        all_recipients=campaign.total_recipients,
        search=search,
        page_link=page_link,
        events=events,
        events_record=record_id,
        person_emails=person_emails,
        step_places={step: place for place, step in enumerate(campaign.steps, start=1)},
        status_filter=status_filter or "",
        statuses=[s.value for s in TrackingStatus],
        lead_status=lead_status,
        lead_choices=await lead_choices(runtime, user_id),
        lead_counts=[
            (status_title(name), count)
            for name, count in sorted(
                (await runtime.leads.counts(user_id, campaign.campaign_id)).items(),
                key=lambda item: (-item[1], item[0]),
            )
        ],
        preview=preview,
        plan=_plan_summary(counts, metrics, waiting, page_zone(request)),
        plan_days=_days_table(loads, mailboxes),
        variants=steps[0].variants,
        steps=steps,
        steps_editable=campaign.status not in FINAL_STATUSES,
        step_parts=STEP_PARTS,
        VARIANT_FIGURES=("sent", "delivered", "opened", "clicked", "replied"),
        actions=campaign_actions(campaign.status),
        chart=events_chart(
            series,
            start=campaign.start_time,
            end=min(campaign.end_time, runtime.clock()),
            zone=page_zone(request),
        ),
        notice=notice,
        problem=problem,
        status=status,
    )


def _steps_typed(values: dict[str, str], numbers: Sequence[Any] = FOLLOW_UPS_ON_FORM) -> list[Any]:
    """The follow-ups filled in on a form (`step_<n>_…` fields; one with neither subject
    nor message is no step), as the API takes them; a days or hours field left empty
    takes its default."""
    typed: list[Any] = []
    for n in numbers:
        subject, message = values[f"step_{n}_subject"], values[f"step_{n}_message"]
        if not subject.strip() and not message.strip():
            continue
        step: dict[str, Any] = {"subject": subject, "message": message}
        for part, name in (("days", "delay_days"), ("hours", "delay_hours")):
            if values[f"step_{n}_{part}"].strip():
                step[name] = values[f"step_{n}_{part}"].strip()
        other = (values[f"step_{n}_variant_subject"], values[f"step_{n}_variant_message"])
        if any(part.strip() for part in other):
            step["variants"] = [{"subject": other[0], "message": other[1]}]
        typed.append(step)
    return typed


def _variants_typed(values: dict[str, str]) -> list[dict[str, str]]:
    """The other wordings filled in on the form (a pair left empty is no variant)."""
    typed = []
    for n in (1, 2):
        subject, message = values[f"variant_subject_{n}"], values[f"variant_message_{n}"]
        if subject.strip() or message.strip():
            typed.append({"subject": subject, "message": message})
    return typed


PLAN_DAYS_SHOWN = 14


def _days_table(loads: list[DayLoad], mailboxes: list[Mailbox]) -> dict[str, Any]:
    """The waiting emails per day (rows) and mailbox (columns, with their daily limits),
    the first PLAN_DAYS_SHOWN days, each cell saying how many are first emails and how
    many follow-ups when there are follow-ups; how many more days there are."""
    columns = [m.id for m in mailboxes]
    extra = sorted({load.mailbox_id for load in loads} - set(columns))
    per_day: dict[Any, dict[str, str]] = {}
    for load in loads:
        total = load.first_emails + load.follow_ups
        cell = str(total)
        if load.follow_ups:
            later = f"{load.follow_ups} follow-up{'s' * (load.follow_ups != 1)}"
            cell = f"{total} ({load.first_emails} first, {later})"
        per_day.setdefault(load.day, {})[load.mailbox_id] = cell
    by_id = {m.id: m for m in mailboxes}
    heads = [
        f"{by_id[c].email} (≤ {by_id[c].daily_limit} a day)" if c in by_id else c
        for c in [*columns, *extra]
    ]
    rows = [
        (day, [cells.get(c, "0") for c in [*columns, *extra]])
        for day, cells in list(per_day.items())[:PLAN_DAYS_SHOWN]
    ]
    return {"heads": heads, "rows": rows, "more": max(len(per_day) - PLAN_DAYS_SHOWN, 0)}


def _plan_summary(
    counts: dict[str, int], metrics: CampaignMetrics, waiting: PendingSchedule, zone: ZoneInfo
) -> str:
    """The campaign's emails in one line: how many, sent (the funnel's figure), waiting, and
    when the waiting ones go out and how fast."""
    total = sum(counts.values())
    if not total:
        return "No recipients yet."
    line = f"{total} emails: {metrics.total_sent} sent, {waiting.count} waiting"
    if waiting.first is not None and waiting.last is not None:
        line += f"; the next at {localtime(waiting.first, zone)}"
        if waiting.count > 1:
            line += f", the last at {localtime(waiting.last, zone)} ({waiting.pace()})"
    return line + "."
