"""Rules for campaigns: creation with its metrics document, edits while scheduled, and the
status machine of DESIGN.md §4."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from mailramp.accounts.repository import UserRepository
from mailramp.campaigns.models import (
    RUNNING_STATUSES,
    SENDING_STATUSES,
    TRANSITIONS,
    VARIANT_LETTERS,
    Campaign,
    CampaignStatus,
    FollowUp,
    Variant,
)
from mailramp.campaigns.repository import (
    CampaignQuery,
    CampaignQueue,
    CampaignRepository,
    PendingSchedule,
)
from mailramp.campaigns.scheduling import campaign_mailboxes, campaign_plan, plan_function
from mailramp.campaigns.schemas import (
    CLEARABLE,
    CampaignCreate,
    CampaignUpdate,
    FollowUpInput,
    VariantInput,
)
from mailramp.campaigns.sequencing import DayLoad, day_loads
from mailramp.campaigns.steps import follow_ups_after
from mailramp.errors import (
    ConflictError,
    InvalidTransitionError,
    NotEditableError,
    NotFoundError,
    PlanError,
    ValidationError,
    found,
)
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.ids import new_campaign_id, new_object_id
from mailramp.kit.types import Page, parse_input
from mailramp.kit.validation import campaign_id_arg, enum_arg, object_id_arg
from mailramp.mailboxes.models import NO_GAP, BrakeKind, Mailbox, SendGap
from mailramp.mailboxes.ramp import limits_ahead, ramp_days, ramp_of
from mailramp.mailboxes.repository import MailboxRepository
from mailramp.metrics.figures import Figure
from mailramp.metrics.models import CampaignMetrics, tallied
from mailramp.metrics.repository import MetricsRepository

log = logging.getLogger(__name__)

STATUS_CHANGE_RETRIES = 3


@dataclass(frozen=True)
class VariantFigures:
    """One variant of a campaign's email (its letter, subject and message) and the figures
    of the recipients who got it."""

    letter: str
    variant: Variant
    figures: list[Figure]


@dataclass(frozen=True)
class StepFigures:
    """One step of a campaign's sequence in its funnel: its place in the order (1 is the
    first email), its number, the follow-up it is (None for the first email), the
    figures of its emails, and those of each of its variants."""

    position: int
    step: int
    follow_up: FollowUp | None
    figures: list[Figure]
    variants: list[VariantFigures]


def end_time_of(start_time: datetime, duration: float) -> datetime:
    """`start_time + duration hours`; a window past the last representable date (year 9999)
    is a ValidationError, not an overflow."""
    try:
        return start_time + timedelta(hours=duration)
    except OverflowError:
        raise ValidationError(
            "duration",
            f"start_time {start_time.isoformat()} plus {duration:g} hours ends after the "
            "year 9999; choose an earlier start_time or a shorter duration",
            value=duration,
        ) from None


def _ends_in_the_future(end_time: datetime, now: datetime) -> None:
    """A window that is already over could send nothing: refuse it."""
    if end_time <= now:
        raise ValidationError(
            "start_time",
            f"the campaign would end at {end_time.isoformat()}, which is in the past; "
            "choose a later start_time or a longer duration",
            value=end_time.isoformat(),
        )


def _variants(given: list[VariantInput] | None) -> list[Variant]:
    """The variants a caller gave, as the campaign keeps them."""
    return [Variant(subject=v.subject, message=v.message) for v in given or []]


def _new_steps(given: list[FollowUpInput] | None) -> list[FollowUp]:
    """The follow-ups of a new campaign, numbered from 2 in order."""
    for index, step in enumerate(given or []):
        if step.step is not None:
            raise ValidationError(
                f"campaign_steps[{index}].step",
                "a new campaign's steps have no number yet: leave `step` out",
                value=step.step,
            )
    return follow_ups_after(given or [], [], 2)


def _mailboxes_after(campaign: Campaign, changes: dict[str, Any]) -> list[str]:
    """The campaign's mailboxes once `changes` apply: `mailbox_ids` as given, or a new
    `mailbox_id` in place of the first (it leaves the rest if it was among them)."""
    if "mailbox_ids" in changes:
        return list(changes["mailbox_ids"])
    first = changes.get("mailbox_id", campaign.mailbox_id)
    return [first, *(m for m in campaign.mailbox_ids[1:] if m != first)]


async def owned_campaign(store: CampaignRepository, user_id: str, campaign_id: str) -> Campaign:
    """The user's campaign (ids checked); another user's is 'not found', as a missing one."""
    return found(
        await store.get_campaign(
            object_id_arg(user_id, field="user_id"), campaign_id_arg(campaign_id)
        ),
        "campaign",
        campaign_id,
    )


class CampaignStore(
    CampaignRepository,
    CampaignQueue,
    MailboxRepository,
    MetricsRepository,
    UserRepository,
    Protocol,
):
    """What CampaignService reads and writes."""


class CampaignService:
    """Creates campaigns and moves them through their lives."""

    def __init__(
        self, store: CampaignStore, *, clock: Clock = utc_now, send_gap: SendGap = NO_GAP
    ) -> None:
        self._store = store
        self._clock = clock
        self._send_gap = send_gap
        """The pause between two sends of a mailbox, which plans leave room for."""

    async def create_campaign(self, user_id: str, **fields: Any) -> Campaign:
        """Create a scheduled campaign and its zeroed `campaign_matrix` document together.

        The mailbox must be the user's, linked and active.
        """
        owner = object_id_arg(user_id, field="user_id")
        data = parse_input(CampaignCreate, fields)
        user = await self._store.get_user(owner)
        if user is None:
            raise NotFoundError("user", user_id)
        if not user.is_active:
            raise ConflictError(f"user {user_id!r} is deactivated", field="user_id")
        assert data.mailbox_id is not None and data.mailbox_ids is not None  # CampaignCreate
        mailboxes = await self._sending_mailboxes(owner, data.mailbox_ids)
        now = self._clock()
        end_time = end_time_of(data.start_time, data.duration)
        _ends_in_the_future(end_time, now)
        campaign_id = new_campaign_id()
        object_id = new_object_id()
        campaign = Campaign(
            **(
                dict(data)
                | {
                    "variants": _variants(data.variants),
                    "campaign_steps": _new_steps(data.campaign_steps),
                }
            ),  # as validated
            id=object_id,
            campaign_id=campaign_id,
            user_id=owner,
            end_time=end_time,
            status=CampaignStatus.SCHEDULED,
            created_at=now,
            updated_at=now,
            created_by=owner,
        )
        # Refuse at once a campaign whose declared recipients cannot fit its window.
        plan = await campaign_plan(
            self._store, campaign, mailboxes, now=now, send_gap=self._send_gap
        )
        plan.check_fits(data.total_recipients)
        metrics = CampaignMetrics(
            id=new_object_id(),
            campaign_id=campaign_id,
            user_id=owner,
            mailbox_id=data.mailbox_id,
            created_at=now,
            last_updated=now,
        )
        return await self._store.insert_campaign(campaign, metrics)

    async def get_campaign(self, user_id: str, campaign_id: str) -> Campaign:
        """The user's campaign; another user's is 'not found'."""
        return await owned_campaign(self._store, user_id, campaign_id)

    async def get_campaign_of_anyone(self, campaign_id: str) -> Campaign:
        """A campaign whoever owns it: for the operator's CLI, which then acts through the
        owner-scoped methods as that owner."""
        return found(
            await self._store.get_campaign_unscoped(campaign_id_arg(campaign_id)),
            "campaign",
            campaign_id,
        )

    async def list_campaigns(
        self, user_id: str, *, status: str | None = None, offset: int = 0, limit: int = 50
    ) -> Page[Campaign]:
        """The user's campaigns, newest first, optionally of one status."""
        statuses = None
        if status is not None:
            statuses = [enum_arg(CampaignStatus, status, field="status")]
        query = CampaignQuery(statuses=statuses, offset=offset, limit=limit)
        return await self._store.list_campaigns(object_id_arg(user_id, field="user_id"), query)

    async def update_campaign(self, user_id: str, campaign_id: str, **fields: Any) -> Campaign:
        """Edit a campaign that has not started; `end_time` follows start and duration. A
        running (or paused) campaign can change only its mailboxes — one added takes a share
        of the people not contacted yet, and so adds capacity; people already contacted
        keep theirs — and its brake rules (None: the defaults)."""
        campaign = await self.get_campaign(user_id, campaign_id)
        data = parse_input(CampaignUpdate, fields)
        changes: dict[str, Any] = {}
        for name in data.model_fields_set:
            value = getattr(data, name)
            if value is None and name not in CLEARABLE:
                raise ValidationError(name, "cannot be cleared", value=None)
            changes[name] = value
        if "variants" in changes:
            changes["variants"] = _variants(changes["variants"])
        mailboxes_only = not set(changes) - {"mailbox_id", "mailbox_ids", "brake_rules"}
        running = campaign.status in RUNNING_STATUSES and mailboxes_only and changes
        if campaign.status is not CampaignStatus.SCHEDULED and not running:
            raise NotEditableError(
                f"only a scheduled campaign can be edited; this one is {campaign.status} "
                "(a running or paused one can change only its mailboxes)",
                field="status",
            )
        mailbox_ids = _mailboxes_after(campaign, changes)
        changes |= {"mailbox_id": mailbox_ids[0], "mailbox_ids": mailbox_ids}
        mailboxes = await self._sending_mailboxes(campaign.user_id, mailbox_ids)
        start = changes.get("start_time", campaign.start_time)
        duration = changes.get("duration", campaign.duration)
        changes["end_time"] = end_time_of(start, duration)
        changes["updated_at"] = self._clock()
        _ends_in_the_future(changes["end_time"], self._clock())
        pending = await self._pending_count(campaign)
        edited = campaign.model_copy(update=changes)
        plan = await campaign_plan(
            self._store, edited, mailboxes, now=self._clock(), send_gap=self._send_gap
        )
        plan.check_fits(pending)
        updated = await self._store.update_campaign(campaign, changes)  # status unchanged
        if updated is None:
            raise NotEditableError(
                f"the campaign left '{campaign.status}' while it was being edited",
                field="status",
            )
        if pending:
            await self._replan(updated)
        return updated

    async def change_status(
        self,
        user_id: str,
        campaign_id: str,
        status: str,
        *,
        also: Mapping[str, Any] | None = None,
    ) -> Campaign:
        """Move the campaign to `status` if the state machine allows it from where it is
        (with the `also` changes, in the same write)."""
        target = enum_arg(CampaignStatus, status, field="status")
        for _ in range(STATUS_CHANGE_RETRIES):
            campaign = await self.get_campaign(user_id, campaign_id)
            allowed = TRANSITIONS[campaign.status]
            if target not in allowed:
                raise InvalidTransitionError(
                    "campaign", campaign.status, target, sorted(s.value for s in allowed)
                )
            changes = {"status": target, "updated_at": self._clock(), **(also or {})}
            updated = await self._store.update_campaign(campaign, changes)
            if updated is not None:
                return updated
            # Someone else changed the status between our read and write: judge again.
        raise ConflictError("the campaign's status keeps changing; try again", field="status")

    async def _pending_count(self, campaign: Campaign) -> int:
        """How many people wait for their first email (each plan places their sequence)."""
        schedule = await self._store.pending_schedule(campaign.user_id, campaign.campaign_id)
        return schedule.first_emails

    async def pending_schedule(self, user_id: str, campaign_id: str) -> PendingSchedule:
        """How many of the user's campaign's emails wait, and when the first and last of
        them are planned."""
        campaign = await self.get_campaign(user_id, campaign_id)
        return await self._store.pending_schedule(campaign.user_id, campaign.campaign_id)

    async def variant_figures(self, user_id: str, campaign_id: str) -> list[VariantFigures]:
        """Each variant of the campaign's first email with the figures of its recipients
        (A/B), A first; every variant is listed, with zeros until it has recipients."""
        return (await self.step_figures(user_id, campaign_id))[0].variants

    async def step_figures(self, user_id: str, campaign_id: str) -> list[StepFigures]:
        """The per-step funnel: each step in sending order with the figures of its emails
        (how many were sent, delivered, opened, clicked, answered), and of each of its
        variants; every step and variant is listed, with zeros until it has emails."""
        campaign = await self.get_campaign(user_id, campaign_id)
        counted = await self._store.counters_by_step(campaign.user_id, campaign.campaign_id)
        funnel = []
        for position, step in enumerate(campaign.steps, start=1):
            wordings = campaign.step_wordings(step)
            variants = [
                VariantFigures(
                    VARIANT_LETTERS[index],
                    variant,
                    campaign.figures(tallied(counted.get((step, index), {}))),
                )
                for index, variant in enumerate(wordings)
            ]
            whole: Counter[str] = Counter()
            for index in range(len(wordings)):
                whole.update(counted.get((step, index), {}))
            figures = campaign.figures(tallied(whole))
            funnel.append(StepFigures(position, step, campaign.follow_up(step), figures, variants))
        return funnel

    async def pending_by_day(self, user_id: str, campaign_id: str) -> list[DayLoad]:
        """How many of the campaign's waiting emails each of its mailboxes sends each day
        (days as its daily limit counts them: the sending window's zone, else UTC)."""
        campaign = await self.get_campaign(user_id, campaign_id)
        slots = await self._store.pending_slots(campaign.user_id, campaign.campaign_id)
        loads = day_loads(slots, campaign.sending_window)
        now = self._clock()
        limits: dict[str, dict[date, int]] = {}
        for mailbox_id in {load.mailbox_id for load in loads}:
            mailbox = await self._store.get_mailbox(campaign.user_id, mailbox_id)
            if mailbox is not None:
                days = await self._store.mailbox_days(mailbox.id) if ramp_of(mailbox) else []
                span = ramp_days(mailbox, now, campaign.end_time)
                limits[mailbox_id] = limits_ahead(mailbox, days, now, span)
        return [
            replace(load, daily_limit=limits.get(load.mailbox_id, {}).get(load.day))
            for load in loads
        ]

    async def _replan(self, campaign: Campaign) -> None:
        now = self._clock()
        if now >= campaign.end_time:
            return  # the lifecycle expires whatever is left
        mailboxes = await campaign_mailboxes(self._store, campaign)
        plan = await plan_function(
            self._store, campaign, mailboxes, now=now, send_gap=self._send_gap
        )
        await self._store.replan_pending(campaign, plan=plan)

    async def pause(self, user_id: str, campaign_id: str) -> Campaign:
        """Stop sending until resumed."""
        return await self.change_status(user_id, campaign_id, CampaignStatus.PAUSED)

    async def brake(self, campaign: Campaign, kind: BrakeKind, reason: str) -> Campaign:
        """Pause the campaign by a brake (deliverability/brakes.py), saying why; resuming
        it is one action, as after any pause."""
        held = {"brake_kind": kind, "brake_reason": reason, "braked_at": self._clock()}
        return await self.change_status(
            campaign.user_id, campaign.campaign_id, CampaignStatus.PAUSED, also=held
        )

    async def resume(self, user_id: str, campaign_id: str) -> Campaign:
        """Continue a paused campaign: `active` if its start has passed, else `scheduled`.
        The recipients not yet sent are spread again across what is left of the window. A
        brake's pause is lifted the same way; its bounce rate now is remembered (the brake
        then waits 7 days unless the rate rises above it)."""
        campaign = await self.get_campaign(user_id, campaign_id)
        target = (
            CampaignStatus.ACTIVE
            if self._clock() >= campaign.start_time
            else CampaignStatus.SCHEDULED
        )
        # Refuse before changing anything if what is left no longer fits what is left of
        # the window (PlanError says what would fit).
        now = self._clock()
        if campaign.status is CampaignStatus.PAUSED and now < campaign.end_time:
            mailboxes = await campaign_mailboxes(self._store, campaign)
            plan = await campaign_plan(
                self._store, campaign, mailboxes, now=now, send_gap=self._send_gap
            )
            plan.check_fits(await self._pending_count(campaign))
        lifted: dict[str, Any] = {}
        if campaign.braked_at is not None:
            metrics = await self._store.get_metrics(campaign.user_id, campaign.campaign_id)
            lifted = {
                "brake_reason": None,
                "braked_at": None,
                "brake_resumed_at": now,
                "brake_resumed_rate": metrics.bounce_rate if metrics else None,
            }
        resumed = await self.change_status(user_id, campaign_id, target, also=lifted)
        await self._replan(resumed)
        return resumed

    async def launch(self, user_id: str, campaign_id: str) -> Campaign:
        """Start sending now. A scheduled campaign's window moves to begin now (same
        duration) and it becomes active; a paused one resumes, and starts now too when it
        was paused before its start."""
        campaign = await self.get_campaign(user_id, campaign_id)
        if campaign.status is CampaignStatus.PAUSED:
            campaign = await self.resume(user_id, campaign_id)
            if campaign.status is not CampaignStatus.SCHEDULED:
                return campaign
        if campaign.status is not CampaignStatus.SCHEDULED:
            raise InvalidTransitionError(
                "campaign",
                campaign.status,
                CampaignStatus.ACTIVE,
                sorted(s.value for s in TRANSITIONS[campaign.status]),
            )
        if campaign.start_time > self._clock():
            await self.update_campaign(user_id, campaign_id, start_time=self._clock())
        return await self.change_status(user_id, campaign_id, CampaignStatus.ACTIVE)

    async def cancel(self, user_id: str, campaign_id: str) -> Campaign:
        """Stop the campaign for good: what has not left is marked `cancelled` (sends already
        in flight finish). Cancelling a cancelled campaign again finishes a cancel that was
        cut short between its two steps (a crash): nothing of it is sent meanwhile, since
        only active campaigns' records are claimed."""
        cancelled = await self.get_campaign(user_id, campaign_id)
        if cancelled.status is not CampaignStatus.CANCELLED:
            cancelled = await self.change_status(user_id, campaign_id, CampaignStatus.CANCELLED)
        await self._store.cancel_pending(cancelled.campaign_id, now=self._clock())
        return cancelled

    async def mailbox_can_send_changed(self, user_id: str, mailbox_id: str) -> None:
        """Share again the waiting emails of the campaigns that send from this mailbox and
        others, over those that can send now: a stopped mailbox's first emails move to the
        others, a mailbox back takes its share again. A campaign the others cannot absorb is
        left as it is (its emails for the stopped mailbox wait for it)."""
        offset, shared = 0, []
        while True:
            query = CampaignQuery(
                statuses=SENDING_STATUSES, mailbox_id=mailbox_id, offset=offset, limit=200
            )
            page = await self._store.list_campaigns(user_id, query)
            shared += [c for c in page.items if len(c.mailbox_ids) > 1]
            offset += len(page.items)
            if not page.items or offset >= page.total:
                break
        for campaign in shared:
            try:
                await self._replan(campaign)
            except PlanError as error:
                log.info("campaign %s keeps its plan: %s", campaign.campaign_id, error.message)

    async def running_on_mailbox(
        self, user_id: str, mailbox_id: str, *, limit: int
    ) -> tuple[int, list[str]]:
        """How many of the user's campaigns that are not finished send from the mailbox,
        and the names of the first `limit` (MailboxService refuses to unlink it then)."""
        query = CampaignQuery(statuses=RUNNING_STATUSES, mailbox_id=mailbox_id, limit=limit)
        running = await self._store.list_campaigns(user_id, query)
        return running.total, [campaign.campaign_name for campaign in running.items]

    async def _sending_mailboxes(self, owner: str, mailbox_ids: list[str]) -> list[Mailbox]:
        """The owner's mailboxes a campaign is to send from, each linked and active."""
        mailboxes = []
        for position, mailbox_id in enumerate(mailbox_ids):
            mailbox = await self._store.get_mailbox(owner, mailbox_id)
            if mailbox is None or not mailbox.is_linked:
                raise NotFoundError("mailbox", mailbox_id)
            if not mailbox.can_send:
                reason = f" ({mailbox.status_reason})" if mailbox.status_reason else ""
                raise ConflictError(
                    f"mailbox {mailbox.email} is {mailbox.status}{reason}; "
                    "only an active mailbox can send a campaign",
                    field="mailbox_ids" if position else "mailbox_id",
                )
            mailboxes.append(mailbox)
        return mailboxes
