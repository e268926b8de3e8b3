"""What callers send to create or change a campaign."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from mailramp.campaigns.models import (
    MAX_DURATION_HOURS,
    MAX_MAILBOXES,
    MAX_POSTPONE_DAYS,
    MAX_STEPS,
    MAX_VARIANTS,
    VARIANT_LETTERS,
    MessageFormat,
    SendingWindow,
)
from mailramp.campaigns.spintax import template_problems
from mailramp.kit.types import Input, MomentInput, Name, ObjectIdStr, Text, refuse_null
from mailramp.mailboxes.models import BrakeRules


def well_formed(text: str) -> str:
    """`text` unless a merge tag or spintax group in it is malformed: then ValueError
    naming the step and the line and column."""
    problems = template_problems(text)
    if problems:
        raise ValueError(f"step 1, {problems[0]}")
    return text


SubjectText = Annotated[str, Text(998)]
BodyText = Annotated[str, Text(1_000_000)]
OwnSubject = Annotated[str, Text(998, required=False)]
"""A follow-up's subject: empty (the step's own, or a reply in the thread) or its own."""


class VariantInput(Input):
    """Another wording of the email (variant B, C…): its subject and message."""

    subject: SubjectText
    message: BodyText


Variants = Annotated[list[VariantInput], Field(max_length=MAX_VARIANTS - 1)]


def well_formed_variants(variants: list[VariantInput] | None) -> list[VariantInput] | None:
    """The variants unless a merge tag or spintax group in one is malformed: then ValueError
    naming the step, the variant, the part, the line and the column."""
    for letter, variant in zip(VARIANT_LETTERS[1:], variants or [], strict=False):
        for part in ("subject", "message"):
            problems = template_problems(getattr(variant, part))
            if problems:
                raise ValueError(f"step 1, variant {letter}, {part}, {problems[0]}")
    return variants


class FollowUpVariantInput(Input):
    """Another wording of a follow-up (variant B, C…): its message, and its subject (left
    empty: the step's own; a step sent in the thread ignores it)."""

    subject: OwnSubject = ""
    message: BodyText


class FollowUpInput(Input):
    """A follow-up step: its delay after the previous step (days — sending days when the
    window skips weekdays — and hours), its message, and a subject of its own or none (then
    it is sent as a reply in the thread: `Re: <subject>`). `step` names an existing
    follow-up to keep or change; a step without one is added."""

    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "properties": {"delay_days": {"const": 0}, "delay_hours": {"const": 0}},
                "required": ["delay_days"],
            },
            "description": "A follow-up needs a delay: `delay_days` 0 needs `delay_hours`.",
        }
    )

    step: int | None = Field(default=None, ge=2, le=MAX_STEPS)
    delay_days: int = Field(default=3, ge=0, le=365)
    delay_hours: float = Field(default=0.0, ge=0, le=24 * 365)
    subject: OwnSubject = ""
    message: BodyText
    variants: Annotated[list[FollowUpVariantInput], Field(max_length=MAX_VARIANTS - 1)] | None = (
        None
    )

    @model_validator(mode="after")
    def _some_delay(self) -> FollowUpInput:
        if self.delay_days == 0 and self.delay_hours == 0:
            raise ValueError("a follow-up needs a delay after the previous step (days or hours)")
        return self


FollowUps = Annotated[list[FollowUpInput], Field(max_length=MAX_STEPS - 1)]


def well_formed_steps(steps: list[FollowUpInput] | None) -> list[FollowUpInput] | None:
    """The follow-ups unless a merge tag or spintax group in one is malformed (ValueError
    naming the step — the first email is step 1 — the variant, the part, the line and the
    column), or one names the same existing step twice."""
    named = [step.step for step in steps or [] if step.step is not None]
    if len(named) != len(set(named)):
        raise ValueError(f"campaign_steps names step {named[0]} twice")
    for number, step in enumerate(steps or [], start=2):
        wordings = [step, *(step.variants or [])]
        for letter, wording in zip(VARIANT_LETTERS, wordings, strict=False):
            for part in ("subject", "message"):
                problems = template_problems(getattr(wording, part))
                if problems:
                    variant = f", variant {letter}" if len(wordings) > 1 else ""
                    raise ValueError(f"step {number}{variant}, {part}, {problems[0]}")
    return steps


PostponeDays = Annotated[int, Field(ge=0, le=MAX_POSTPONE_DAYS)]
Subject = Annotated[SubjectText, AfterValidator(well_formed)]
Body = Annotated[BodyText, AfterValidator(well_formed)]
DurationHours = Annotated[float, Field(gt=0, le=MAX_DURATION_HOURS)]


MailboxIds = Annotated[
    list[ObjectIdStr],
    Field(min_length=1, max_length=MAX_MAILBOXES, json_schema_extra={"uniqueItems": True}),
]


def mailboxes_in_order(mailbox_id: str | None, mailbox_ids: list[str] | None) -> list[str] | None:
    """The campaign's mailboxes as given: `mailbox_ids` (the first is `mailbox_id` when both
    are given), or just `mailbox_id`; ValueError naming `mailbox_ids` for a repeated one."""
    if mailbox_ids is None:
        return [mailbox_id] if mailbox_id else None
    if mailbox_id is not None and mailbox_ids[0] != mailbox_id:
        raise ValueError(
            f"mailbox_ids must start with mailbox_id {mailbox_id!r} (the campaign's first)"
        )
    repeated = next((m for n, m in enumerate(mailbox_ids) if m in mailbox_ids[:n]), None)
    if repeated is not None:
        raise ValueError(f"mailbox_ids lists {repeated!r} twice")
    return mailbox_ids


class CampaignCreate(Input):
    """A new campaign; `end_time` is computed as start_time + duration hours. It sends from
    `mailbox_id`, or from every mailbox of `mailbox_ids` (the first is its `mailbox_id`)."""

    mailbox_id: ObjectIdStr | None = None
    mailbox_ids: MailboxIds | None = None
    campaign_name: Name
    subject: Subject
    message: Body
    duration: DurationHours
    start_time: MomentInput
    total_recipients: int = Field(default=0, ge=0, le=10_000_000)
    message_format: MessageFormat = MessageFormat.TEXT
    sending_window: SendingWindow | None = None
    track_opens: bool = True
    track_clicks: bool = True
    trap_link: bool = False
    stop_company_on_reply: bool = False
    auto_reply_postpone_days: PostponeDays = 0
    variants: Variants | None = None
    campaign_steps: FollowUps | None = None
    brake_rules: BrakeRules | None = Field(
        default=None,
        description="When its bounce brake pauses it (deliverability.md); unset: 3 % "
        "after 20 people.",
    )

    _variants_checked = field_validator("variants")(well_formed_variants)
    _steps_checked = field_validator("campaign_steps")(well_formed_steps)

    @model_validator(mode="after")
    def _mailboxes(self) -> CampaignCreate:
        mailboxes = mailboxes_in_order(self.mailbox_id, self.mailbox_ids)
        if mailboxes is None:
            raise ValueError("mailbox_id is required (or mailbox_ids)")
        self.mailbox_id, self.mailbox_ids = mailboxes[0], mailboxes
        return self


CLEARABLE = frozenset({"sending_window", "brake_rules"})
"""A campaign's settings a change may set to null (back to the defaults); no other."""


class CampaignUpdate(Input):
    """Changes to a scheduled campaign; fields left out stay as they are. A new `mailbox_id`
    alone replaces the first mailbox; `mailbox_ids` replaces them all."""

    model_config = ConfigDict(
        json_schema_extra=lambda schema: refuse_null(schema, set(schema["properties"]) - CLEARABLE)
    )

    mailbox_id: ObjectIdStr | None = None
    mailbox_ids: MailboxIds | None = None
    campaign_name: Name | None = None
    subject: Subject | None = None
    message: Body | None = None
    duration: DurationHours | None = None
    start_time: MomentInput | None = None
    message_format: MessageFormat | None = None
    sending_window: SendingWindow | None = None
    track_opens: bool | None = None
    track_clicks: bool | None = None
    trap_link: bool | None = None
    stop_company_on_reply: bool | None = None
    auto_reply_postpone_days: PostponeDays | None = None
    variants: Variants | None = None
    brake_rules: BrakeRules | None = None

    _variants_checked = field_validator("variants")(well_formed_variants)

    @model_validator(mode="after")
    def _mailboxes(self) -> CampaignUpdate:
        mailboxes_in_order(self.mailbox_id, self.mailbox_ids)
        return self


class StepsUpdate(Input):
    """The whole list of a campaign's follow-ups after a change, in order: each existing
    one kept names its `step`; one left out is removed; one without a `step` is added (at
    the end: steps keep the order they were added in)."""

    campaign_steps: Annotated[FollowUps, AfterValidator(well_formed_steps)]
