"""What callers send to create or change a campaign."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from mailramp.campaigns.models import MAX_DURATION_HOURS, MessageFormat, SendingWindow
from mailramp.campaigns.spintax import template_problems
from mailramp.kit.types import Input, Name, ObjectIdStr, UTCDateTime


def well_formed(text: str, *, where: str = "step 1") -> str:
    """`text` unless a merge tag or spintax group in it is malformed: then ValueError
    naming the step (and variant) and the line and column."""
    problems = template_problems(text)
    if problems:
        raise ValueError(f"{where}, {problems[0]}")
    return text


Subject = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=998),
    AfterValidator(well_formed),
]
Body = Annotated[
    str, StringConstraints(min_length=1, max_length=1_000_000), AfterValidator(well_formed)
]
DurationHours = Annotated[float, Field(gt=0, le=MAX_DURATION_HOURS)]


class CampaignCreate(Input):
    """A new campaign; `end_time` is computed as start_time + duration hours."""

    mailbox_id: ObjectIdStr
    campaign_name: Name
    subject: Subject
    message: Body
    duration: DurationHours
    start_time: UTCDateTime
    total_recipients: int = Field(default=0, ge=0)
    message_format: MessageFormat = MessageFormat.TEXT
    sending_window: SendingWindow | None = None
    track_opens: bool = True
    track_clicks: bool = True


class CampaignUpdate(Input):
    """Changes to a scheduled campaign; fields left out stay as they are."""

    mailbox_id: ObjectIdStr | None = None
    campaign_name: Name | None = None
    subject: Subject | None = None
    message: Body | None = None
    duration: DurationHours | None = None
    start_time: UTCDateTime | None = None
    message_format: MessageFormat | None = None
    sending_window: SendingWindow | None = None
    track_opens: bool | None = None
    track_clicks: bool | None = None
