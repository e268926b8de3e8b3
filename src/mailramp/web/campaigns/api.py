"""Campaigns over JSON: create, edit, move through their lives, recipients, metrics and
export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from pydantic import Field, computed_field

from mailramp.campaigns.models import Campaign, CampaignStatus
from mailramp.campaigns.schemas import CampaignCreate, CampaignUpdate, StepsUpdate
from mailramp.campaigns.service import StepFigures, VariantFigures
from mailramp.kit.types import CampaignIdStr, MomentInput
from mailramp.metrics.models import CampaignMetrics
from mailramp.tracking.classify import describe
from mailramp.tracking.models import EmailEvent, EmailTracking, EventType, TrackingStatus
from mailramp.tracking.service import RecipientFilter
from mailramp.web.deps import CallerDep, RuntimeDep
from mailramp.web.responses import CsvStream, PagePublic, PagingDep, Public

router = APIRouter(prefix="/api/v1")


class CampaignPublic(Campaign, Public):
    """A campaign as the API shows it."""


class MetricsPublic(CampaignMetrics, Public):
    """A campaign's `campaign_matrix`: counters of unique recipients, and rates in percent
    (the human figures leave out privacy proxies and link scanners); beside them, how many
    people hold each lead status."""

    lead_statuses: dict[str, int] = Field(
        default_factory=dict,
        description="People per lead status (statuses no one holds left out), counted when read.",
    )


class RecipientPublic(EmailTracking, Public):
    """One recipient of a campaign and what happened to their email."""


class FigurePublic(Public):
    """One number as people read it (docs/metrics.md): a count of recipients, its rate in
    percent of `of`, or why it cannot be measured; what machines did beside it."""

    key: str
    label: str
    count: int
    rate: float | None
    rate_of: str | None = Field(alias="of", description="What the rate is a percentage of.")
    unmeasured: str | None
    machines: int | None


class VariantFiguresPublic(Public):
    """One variant of the email (A is the campaign's own subject and message) and the
    figures of the recipients who got it."""

    letter: str
    subject: str
    message: str
    figures: list[FigurePublic]

    @classmethod
    def of_variant(cls, row: VariantFigures) -> VariantFiguresPublic:
        return cls(
            letter=row.letter,
            subject=row.variant.subject,
            message=row.variant.message,
            figures=[FigurePublic.of(figure) for figure in row.figures],
        )


class StepFiguresPublic(Public):
    """One step of the sequence in the funnel: its place (1 is the first email), its
    number (kept by its emails), its delay after the previous step and its wording (the
    first email: the campaign's subject and message; an empty subject: a reply in the
    thread), the figures of its emails, and those of each of its variants."""

    position: int
    step: int
    delay_days: int
    delay_hours: float
    subject: str
    message: str
    figures: list[FigurePublic]
    variants: list[VariantFiguresPublic]

    @classmethod
    def of_step(cls, row: StepFigures) -> StepFiguresPublic:
        first = row.variants[0].variant
        follow_up = row.follow_up
        return cls(
            position=row.position,
            step=row.step,
            delay_days=follow_up.delay_days if follow_up else 0,
            delay_hours=follow_up.delay_hours if follow_up else 0.0,
            subject=first.subject,
            message=first.message,
            figures=[FigurePublic.of(figure) for figure in row.figures],
            variants=[VariantFiguresPublic.of_variant(v) for v in row.variants],
        )


class DayLoadPublic(Public):
    """What one mailbox sends on one day of the plan (the day as its daily limit counts
    it: in the sending window's zone, else UTC)."""

    mailbox_id: str
    day: date
    first_emails: int
    follow_ups: int
    daily_limit: int | None = None
    """The mailbox's limit that day: its ramp's while it ramps up; None for a day past."""


class EventPublic(EmailEvent, Public):
    """One entry of an email's event log (`details` is what the request or message said:
    untrusted; `details.machine`, what the rule in `machine_reason` found)."""

    @computed_field(  # type: ignore[prop-decorator]
        description='What happened, in words, with why a machine made it: "clicked '
        '(scanner: burst of 4 links in 0.8 s)", "opened (Apple Mail Privacy Protection)".'
    )
    @property
    def summary(self) -> str:
        return describe(self)


class EventLogPublic(Public):
    """Your event log after a number, in number order: every change of an email's state
    (queued, sent, opened, clicked, replied, auto-replied, bounced, complained,
    unsubscribed, stopped, failed, uncertain, expired, cancelled, suppressed), each once,
    numbered 1, 2, 3… per account in the order they were recorded."""

    events: list[EventPublic]
    next_after: int = Field(
        description="Pass as `after` to read on: the last number returned (or the `after` "
        "given, when nothing new was there)."
    )


class InvalidRowPublic(Public):
    """A row of the file that was skipped, and why."""

    row: int
    value: str
    reason: str


class ImportReportPublic(Public):
    """What an import did with the file's rows."""

    accepted: int
    duplicates: int
    suppressed: int
    invalid_count: int
    invalid: list[InvalidRowPublic]
    rows: int
    total_recipients: int


class Requeued(Public):
    """How many uncertain emails were queued again."""

    queued: int


@router.post("/campaigns", status_code=201, tags=["campaigns"])
async def create_campaign(
    body: CampaignCreate, caller: CallerDep, runtime: RuntimeDep
) -> CampaignPublic:
    """Create a scheduled campaign (its metrics document comes with it)."""
    campaign = await runtime.campaigns.create_campaign(caller.user.user_id, **body.model_dump())
    return CampaignPublic.of(campaign)


@router.get("/campaigns", tags=["campaigns"])
async def list_campaigns(
    caller: CallerDep,
    runtime: RuntimeDep,
    paging: PagingDep,
    status: Annotated[CampaignStatus | None, Query(description="Only those in this state.")] = None,
) -> PagePublic[CampaignPublic]:
    """Your campaigns, newest first."""
    page = await runtime.campaigns.list_campaigns(
        caller.user.user_id, status=status, offset=paging.offset, limit=paging.limit
    )
    return PagePublic[CampaignPublic].of(page)


@router.get("/campaigns/{campaign_id}", tags=["campaigns"])
async def get_campaign(campaign_id: str, caller: CallerDep, runtime: RuntimeDep) -> CampaignPublic:
    """One of your campaigns."""
    return CampaignPublic.of(await runtime.campaigns.get_campaign(caller.user.user_id, campaign_id))


@router.patch("/campaigns/{campaign_id}", tags=["campaigns"])
async def update_campaign(
    campaign_id: str, body: CampaignUpdate, caller: CallerDep, runtime: RuntimeDep
) -> CampaignPublic:
    """Edit a scheduled campaign."""
    campaign = await runtime.campaigns.update_campaign(
        caller.user.user_id, campaign_id, **body.model_dump(exclude_unset=True)
    )
    return CampaignPublic.of(campaign)


# The status changes a campaign's state machine offers, one route each.
CAMPAIGN_ACTIONS = {
    "launch": "Start sending now: a scheduled campaign's window moves to begin now (same "
    "duration); a paused one resumes.",
    "pause": "Stop sending until resumed.",
    "resume": "Continue; what is left is spread over what is left of the window.",
    "cancel": "Stop for good.",
}


def _campaign_action(action: str) -> Callable[..., Awaitable[CampaignPublic]]:
    async def change(campaign_id: str, caller: CallerDep, runtime: RuntimeDep) -> CampaignPublic:
        act = getattr(runtime.campaigns, action)
        return CampaignPublic.of(await act(caller.user.user_id, campaign_id))

    return change


for _action, _summary in CAMPAIGN_ACTIONS.items():
    router.add_api_route(
        f"/campaigns/{{campaign_id}}/{_action}",
        _campaign_action(_action),
        methods=["POST"],
        name=f"{_action}_campaign",
        description=_summary,
        tags=["campaigns"],
        response_model=CampaignPublic,
    )


@router.post("/campaigns/{campaign_id}/resend-uncertain", tags=["campaigns"])
async def resend_uncertain(campaign_id: str, caller: CallerDep, runtime: RuntimeDep) -> Requeued:
    """Queue `uncertain` records again (their recipients may get two copies)."""
    queued = await runtime.sending.resend_uncertain(caller.user.user_id, campaign_id)
    return Requeued(queued=queued)


@router.post("/campaigns/{campaign_id}/recipients", tags=["campaigns"])
async def upload_recipients(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep, file: Annotated[UploadFile, File()]
) -> ImportReportPublic:
    """Import a CSV of recipients; the import report is the response."""
    report = await runtime.sending.import_recipients(caller.user.user_id, campaign_id, file.file)
    return ImportReportPublic.of(report)


@router.get("/campaigns/{campaign_id}/metrics", tags=["campaigns"])
async def campaign_metrics(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep
) -> MetricsPublic:
    """Counters and rates (human figures included), and people per lead status."""
    user_id = caller.user.user_id
    metrics = await runtime.metrics.get_campaign_metrics(campaign_id, user_id=user_id)
    counts = await runtime.leads.counts(user_id, campaign_id)
    return MetricsPublic.of(metrics).model_copy(update={"lead_statuses": counts})


@router.get("/campaigns/{campaign_id}/variants", tags=["campaigns"])
async def campaign_variants(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep
) -> list[VariantFiguresPublic]:
    """The email's A/B variants, each with the figures of the recipients who got it."""
    rows = await runtime.campaigns.variant_figures(caller.user.user_id, campaign_id)
    return [VariantFiguresPublic.of_variant(row) for row in rows]


@router.get("/campaigns/{campaign_id}/steps", tags=["campaigns"])
async def campaign_steps(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep
) -> list[StepFiguresPublic]:
    """The sequence's steps in order, each with the figures of its emails and of its
    variants: the per-step funnel."""
    rows = await runtime.campaigns.step_figures(caller.user.user_id, campaign_id)
    return [StepFiguresPublic.of_step(row) for row in rows]


@router.put("/campaigns/{campaign_id}/steps", tags=["campaigns"])
async def replace_campaign_steps(
    campaign_id: str, body: StepsUpdate, caller: CallerDep, runtime: RuntimeDep
) -> CampaignPublic:
    """Replace the follow-ups, before or while the campaign runs: each existing one kept
    names its `step`; one left out is removed; one without `step` is added at the end.
    Only emails not sent yet change."""
    campaign = await runtime.sending.set_steps(
        caller.user.user_id, campaign_id, **body.model_dump()
    )
    return CampaignPublic.of(campaign)


@router.get("/campaigns/{campaign_id}/plan", tags=["campaigns"])
async def campaign_plan_by_day(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep
) -> list[DayLoadPublic]:
    """The waiting emails, per day and mailbox: how the plan uses each daily limit."""
    loads = await runtime.campaigns.pending_by_day(caller.user.user_id, campaign_id)
    return [DayLoadPublic.of(load) for load in loads]


class SeriesPointPublic(Public):
    """How many events of one type (by machines, or not) the campaign had in one hour."""

    hour: datetime
    type: EventType
    machine: bool
    count: int


@router.get("/campaigns/{campaign_id}/series", tags=["campaigns"])
async def campaign_series(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep
) -> list[SeriesPointPublic]:
    """Events per hour, for charts."""
    rows = await runtime.tracking.series(caller.user.user_id, campaign_id)
    return [SeriesPointPublic.model_validate(row) for row in rows]


@router.get("/campaigns/{campaign_id}/recipients", tags=["campaigns"])
async def list_recipients(
    campaign_id: str,
    caller: CallerDep,
    runtime: RuntimeDep,
    paging: PagingDep,
    status: TrackingStatus | None = None,
    search: Annotated[str | None, Query(max_length=254)] = None,
) -> PagePublic[RecipientPublic]:
    """The campaign's recipients with their state, in send order; `status` keeps those in
    one state, `search` those whose address contains it."""
    wanted = RecipientFilter(status, search, paging.offset, paging.limit)
    page = await runtime.tracking.list_recipients(caller.user.user_id, campaign_id, wanted)
    return PagePublic[RecipientPublic].of(page)


@router.get("/campaigns/{campaign_id}/recipients/{record_id}/events", tags=["campaigns"])
async def recipient_events(
    campaign_id: str, record_id: str, caller: CallerDep, runtime: RuntimeDep
) -> list[EventPublic]:
    """What happened to one recipient's email, oldest first."""
    _, events = await runtime.tracking.recipient_events(caller.user.user_id, campaign_id, record_id)
    return [EventPublic.of(event) for event in events]


@router.get("/events", tags=["events"])
async def event_log(
    caller: CallerDep,
    runtime: RuntimeDep,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Events numbered after this one.")
    ] = 0,
    campaign_id: Annotated[CampaignIdStr | None, Query(description="Only this campaign's.")] = None,
    kind: Annotated[
        list[EventType] | None, Query(description="Only these kinds (repeat for several).")
    ] = None,
    since: Annotated[MomentInput | None, Query(description="Only from this moment on.")] = None,
    until: Annotated[MomentInput | None, Query(description="Only before this moment.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventLogPublic:
    """Read your event log by cursor: start with `after=0`, then pass `next_after` back.
    A reader never gets an event before one numbered lower that is still being recorded."""
    events = await runtime.tracking.event_log(
        caller.user.user_id,
        after=after,
        campaign_id=campaign_id,
        kinds=[k.value for k in kind or []],
        since=since,
        until=until,
        limit=limit,
    )
    last = events[-1].seq if events and events[-1].seq is not None else after
    return EventLogPublic(events=[EventPublic.of(e) for e in events], next_after=last)


@router.post("/campaigns/{campaign_id}/recipients/{record_id}/stop", tags=["campaigns"])
async def stop_recipient(
    campaign_id: str, record_id: str, caller: CallerDep, runtime: RuntimeDep
) -> RecipientPublic:
    """Stop one person: their email not sent yet is cancelled (`status` becomes
    `cancelled`) and nothing more is sent to them; a `stopped` event is recorded."""
    record = await runtime.tracking.stop(caller.user.user_id, campaign_id, record_id)
    return RecipientPublic.of(record)


@router.post("/campaigns/{campaign_id}/recipients/{record_id}/replied", tags=["campaigns"])
async def mark_recipient_replied(
    campaign_id: str, record_id: str, caller: CallerDep, runtime: RuntimeDep
) -> RecipientPublic:
    """Record a reply that came another way (a call, another address): it counts as their
    reply (`replied_at`, `total_replied`). 409 when they were never emailed."""
    record = await runtime.tracking.mark_replied(caller.user.user_id, campaign_id, record_id)
    return RecipientPublic.of(record)


@router.get("/campaigns/{campaign_id}/export.csv", tags=["campaigns"], response_class=CsvStream)
async def export_recipients(campaign_id: str, caller: CallerDep, runtime: RuntimeDep) -> CsvStream:
    """Every recipient and what happened, as CSV (merge variables included)."""
    campaign = await runtime.campaigns.get_campaign(caller.user.user_id, campaign_id)

    async def rows() -> AsyncIterator[str]:
        async for cells in runtime.sending.export_rows(campaign):
            yield _csv_line(cells)

    filename = f"campaign-{campaign.campaign_id}.csv"
    return CsvStream(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _csv_line(cells: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue()
