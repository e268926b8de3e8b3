"""The `campaign_creation_table` document and the campaign state machine."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from mailramp.campaigns.spintax import spin
from mailramp.kit.types import CampaignIdStr, ObjectIdStr, Record, TimeZoneName, UTCDateTime
from mailramp.mailboxes.models import BrakeKind, BrakeRules
from mailramp.metrics.figures import Figure, figures
from mailramp.metrics.models import CampaignMetrics


class CampaignStatus(StrEnum):
    """Where a campaign is in its life (DESIGN.md §4)."""

    SCHEDULED = "scheduled"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


TRANSITIONS: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    CampaignStatus.SCHEDULED: frozenset(
        {CampaignStatus.ACTIVE, CampaignStatus.PAUSED, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.ACTIVE: frozenset(
        {CampaignStatus.COMPLETED, CampaignStatus.PAUSED, CampaignStatus.CANCELLED}
    ),
    # Resuming returns to `scheduled` before start_time and to `active` after it.
    CampaignStatus.PAUSED: frozenset(
        {CampaignStatus.SCHEDULED, CampaignStatus.ACTIVE, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.COMPLETED: frozenset(),
    CampaignStatus.CANCELLED: frozenset(),
}
"""Every legal status change; anything else is refused."""

FINAL_STATUSES = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
RUNNING_STATUSES = frozenset(
    {CampaignStatus.SCHEDULED, CampaignStatus.ACTIVE, CampaignStatus.PAUSED}
)
"""Campaigns that still hold their mailbox: it cannot be unlinked under them."""
SENDING_STATUSES = frozenset({CampaignStatus.SCHEDULED, CampaignStatus.ACTIVE})
"""Campaigns that send (now or once their start comes) unless someone stops them."""


def campaign_actions(status: CampaignStatus) -> list[str]:
    """What a person may do to a campaign in `status`, read from the state machine: the
    buttons the dashboard shows and the actions its forms may post."""
    allowed = TRANSITIONS[status]
    actions = []
    if CampaignStatus.PAUSED in allowed:
        actions.append("pause")
    if status is CampaignStatus.PAUSED and allowed & {
        CampaignStatus.SCHEDULED,
        CampaignStatus.ACTIVE,
    }:
        actions.append("resume")
    if CampaignStatus.CANCELLED in allowed:
        actions.append("cancel")
    return actions


MAX_DURATION_HOURS = 24 * 366
MAX_MAILBOXES = 20
"""The most mailboxes one campaign sends from."""


class MessageFormat(StrEnum):
    """How `message` is written: plain text, or HTML (sent with a generated text part)."""

    TEXT = "text"
    HTML = "html"


class SendingWindow(BaseModel):
    """When sends may go out: these weekdays (0 = Monday), from `start_hour` to `end_hour`,
    in `timezone`. The daily limit counts calendar days in the same time zone."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: Annotated[
        tuple[int, ...],
        WithJsonSchema(
            {
                "type": "array",
                "items": {"type": "integer", "minimum": 0, "maximum": 6},
                "minItems": 1,
            }
        ),
    ] = (0, 1, 2, 3, 4)
    start_hour: int = Field(default=9, ge=0, le=23)
    end_hour: int = Field(default=17, ge=1, le=24)
    timezone: TimeZoneName = "UTC"

    @field_validator("days")
    @classmethod
    def _weekdays(cls, days: tuple[int, ...]) -> tuple[int, ...]:
        if not days or any(day not in range(7) for day in days):
            raise ValueError("days must list weekdays 0 (Monday) to 6 (Sunday)")
        return tuple(sorted(set(days)))

    @model_validator(mode="after")
    def _hours(self) -> SendingWindow:
        if self.end_hour <= self.start_hour:
            raise ValueError("end_hour must be after start_hour")
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The window's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def open_hours(self) -> int:
        """How many hours it is open on a sending day."""
        return self.end_hour - self.start_hour


MAX_VARIANTS = 5
VARIANT_LETTERS = "ABCDE"
"""Variant A is the campaign's own subject and message; B to E are its `variants`."""


class Variant(BaseModel):
    """Another wording of the email, for an A/B test: its subject and message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str
    message: str


MAX_POSTPONE_DAYS = 60
MAX_STEPS = 10
"""The most steps a sequence has: the first email and up to nine follow-ups."""


@dataclass(frozen=True)
class StepDelay:
    """How long after the previous step a follow-up goes: days (sending days when the
    window skips weekdays) and hours."""

    days: int = 0
    hours: float = 0.0

    def __str__(self) -> str:
        parts = [f"{self.days} day{'s' * (self.days != 1)}"] if self.days else []
        if self.hours or not parts:
            parts.append(f"{self.hours:g} hour{'s' * (self.hours != 1)}")
        return " ".join(parts)


class FollowUp(BaseModel):
    """A follow-up step of the sequence (an entry of the campaign's `campaign_steps`): sent
    `delay_days` and `delay_hours` after the previous step, to people who have not
    answered, from the mailbox that sent them the first email.

    `step` is the step's number, given when it is added and never reused: its emails keep
    it (`EmailTracking.step`) whatever is removed around it. Steps go out in the order of
    their numbers. An empty `subject` makes it a reply in the thread of the previous email
    (`Re: <subject>`, In-Reply-To and References); otherwise it starts a thread of its own.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: int = Field(ge=2)
    delay_days: int = Field(default=3, ge=0, le=365)
    delay_hours: float = Field(default=0.0, ge=0, le=24 * 365)
    subject: str = ""
    message: str
    variants: list[Variant] = Field(default_factory=list)

    @property
    def delay(self) -> StepDelay:
        """How long after the previous step it goes."""
        return StepDelay(self.delay_days, self.delay_hours)

    @property
    def wordings(self) -> list[Variant]:
        """Every variant of the step, A first."""
        return [Variant(subject=self.subject, message=self.message), *self.variants]


class Campaign(Record):
    """A campaign: what to send, from which mailbox, across `[start_time, end_time)`."""

    id: ObjectIdStr = Field(alias="_id")
    campaign_id: CampaignIdStr
    user_id: ObjectIdStr
    mailbox_id: ObjectIdStr
    campaign_name: str
    subject: str
    message: str
    duration: float
    start_time: UTCDateTime
    end_time: UTCDateTime
    status: CampaignStatus = CampaignStatus.SCHEDULED
    total_recipients: int = 0
    created_at: UTCDateTime
    updated_at: UTCDateTime
    created_by: ObjectIdStr
    message_format: MessageFormat = MessageFormat.TEXT
    sending_window: SendingWindow | None = None
    track_opens: bool = True
    track_clicks: bool = True
    trap_link: bool = False
    """Add a link no person can see to the HTML part: whatever fetches it is a link
    scanner, and so is the burst it came in (tracking/classify.py; its cost in spam
    scoring is measured in docs/tracking.md)."""
    stop_company_on_reply: bool = False
    """When one person answers, stop everyone at the same company domain still waiting
    (tracking/stops.py)."""
    auto_reply_postpone_days: int = Field(default=0, ge=0, le=MAX_POSTPONE_DAYS)
    """What an automatic reply (out of office) does to the person's sequence: 0, nothing;
    N, their next step waits until N sending days after it."""
    variants: list[Variant] = Field(default_factory=list)
    """Variants B, C… of the email (A is `subject`/`message`); each recipient gets one,
    assigned in turn as they are imported. Stored empty when there is only A."""
    legacy_fields: dict[str, Any] | None = None
    """Fields of the `email_campaigns` document this campaign was migrated from that have
    no place of their own (`mailramp migrate-legacy`); None for campaigns made here."""
    mailbox_ids: list[ObjectIdStr] = Field(default_factory=list)
    """Every mailbox the campaign sends from, `mailbox_id` (the schema's) first; each
    recipient is sent from one of them. A campaign stored before this field reads as
    `[mailbox_id]`."""
    campaign_steps: list[FollowUp] = Field(default_factory=list)
    """The follow-ups after the first email (`subject`/`message` are step 1), in order of
    their `step` numbers. Empty: a one-step campaign, as every campaign stored before
    sequences reads."""
    brake_rules: BrakeRules | None = None
    """When its bounce brake pauses it; None: the defaults (`DEFAULT_BRAKE_RULES`)."""
    brake_kind: BrakeKind | None = None
    """What the last brake watched (kept after a resume: the grace is per kind)."""
    brake_reason: str | None = None
    """Why a brake paused it (deliverability/brakes.py); None once resumed."""
    braked_at: UTCDateTime | None = None
    brake_resumed_at: UTCDateTime | None = None
    brake_resumed_rate: float | None = None
    """The rate its brake watched when its owner last resumed it: the same brake waits 7
    days from then unless the rate rises above it."""

    @model_validator(mode="before")
    @classmethod
    def _stored_defaults(cls, data: Any) -> Any:
        """Rows stored before a field existed (NULL there): one mailbox, no variants."""
        if not isinstance(data, dict):
            return data
        if not data.get("mailbox_ids") and data.get("mailbox_id"):
            data = {**data, "mailbox_ids": [data["mailbox_id"]]}
        for name in ("variants", "campaign_steps"):
            if data.get(name, ()) is None:
                data = {**data, name: []}
        return data

    @model_validator(mode="after")
    def _first_mailbox_leads(self) -> Campaign:
        if self.mailbox_ids[:1] != [self.mailbox_id]:
            raise ValueError("mailbox_ids must start with mailbox_id")
        if len(set(self.mailbox_ids)) != len(self.mailbox_ids):
            raise ValueError("mailbox_ids must not repeat a mailbox")
        numbers = [step.step for step in self.campaign_steps]
        if numbers != sorted(set(numbers)) or len(numbers) >= MAX_STEPS:
            raise ValueError(f"campaign_steps must be at most {MAX_STEPS - 1}, in step order")
        return self

    @property
    def opens_untracked(self) -> str | None:
        """Why its opens cannot be measured (None when they can): only an HTML email
        carries the pixel, and only when open tracking is on."""
        if self.message_format is not MessageFormat.HTML:
            return "a plain-text email carries no open pixel"
        return None if self.track_opens else "open tracking is off for this campaign"

    @property
    def clicks_untracked(self) -> str | None:
        """Why its clicks cannot be measured (None when they can): only an HTML email's
        links are rewritten (a plain-text email shows its links as written), and only
        when click tracking is on."""
        if self.message_format is not MessageFormat.HTML:
            return "a plain-text email's links are left as written"
        return None if self.track_clicks else "click tracking is off for this campaign"

    @property
    def wordings(self) -> list[Variant]:
        """Every variant of the first email, A first."""
        return [Variant(subject=self.subject, message=self.message), *self.variants]

    def window_for(self, zone: str | None) -> SendingWindow | None:
        """The sending window as it applies to a recipient in `zone` (their own time zone,
        None for the campaign's): the same days and hours, there."""
        window = self.sending_window
        if zone is None or window is None or zone == window.timezone:
            return window
        return window.model_copy(update={"timezone": zone})

    @property
    def texts(self) -> list[str]:
        """Every subject and message it sends: each variant of each step."""
        wordings = [*self.wordings, *(w for f in self.campaign_steps for w in f.wordings)]
        return [text for wording in wordings for text in (wording.subject, wording.message)]

    @property
    def steps(self) -> list[int]:
        """The numbers of its steps in sending order: 1, then each follow-up's."""
        return [1, *(follow_up.step for follow_up in self.campaign_steps)]

    def follow_up(self, step: int) -> FollowUp | None:
        """Follow-up `step` (None for step 1 or one removed)."""
        return next((f for f in self.campaign_steps if f.step == step), None)

    def step_after(self, step: int) -> FollowUp | None:
        """The follow-up that comes after `step` (None after the last)."""
        return next((f for f in self.campaign_steps if f.step > step), None)

    def step_wordings(self, step: int) -> list[Variant]:
        """Every variant of step `step`, A first (the first email's for an unknown step)."""
        follow_up = self.follow_up(step)
        return self.wordings if follow_up is None else follow_up.wordings

    def variant_of(self, index: int, step: int = 1) -> Variant:
        """Variant `index` (0 = A) of step `step`; A when it no longer exists."""
        wordings = self.step_wordings(step)
        return wordings[index] if 0 <= index < len(wordings) else wordings[0]

    def for_recipient(self, email: str, variant: int = 0, step: int = 1) -> Campaign:
        """The campaign as this recipient gets step `step`: their variant's subject and
        message, its spintax resolved to the same choices every time for them (the sent
        email, its preview and its click links agree). A follow-up sent in the thread of
        the previous email has an empty subject here (the message says `Re:`)."""
        step = step if self.follow_up(step) else 1
        chosen = self.variant_of(variant, step)
        seed = f"{self.campaign_id}:{email.lower()}:{step}"
        if variant:
            seed += f":{VARIANT_LETTERS[variant]}"
        subject = spin(chosen.subject, f"{seed}:subject")
        message = spin(chosen.message, f"{seed}:message")
        if (subject, message) == (self.subject, self.message):
            return self
        return self.model_copy(update={"subject": subject, "message": message})

    def figures(self, metrics: CampaignMetrics) -> list[Figure]:
        """Its metrics as people read them (metrics/figures.py), with what it cannot
        measure said so."""
        return figures(
            metrics,
            opens_untracked=self.opens_untracked,
            clicks_untracked=self.clicks_untracked,
        )
