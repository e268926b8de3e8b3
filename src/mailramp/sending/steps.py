"""What a step added to a running campaign means for the people already in it (which
steps a campaign keeps is `campaigns/steps.py`).

A change affects only emails not sent yet: the content of a step is read when its email is
sent; a removed step's unsent emails go, and where one was due, the person's next step is
due in its place (the store's `remove_step`); an added step is given to everyone whose
sequence is still going (here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from mailramp.campaigns.models import MAX_DURATION_HOURS, Campaign, FollowUp
from mailramp.campaigns.sequencing import after_delay
from mailramp.errors import ValidationError
from mailramp.kit.ids import new_object_id
from mailramp.tracking.models import EmailTracking, TrackingStatus

STILL_GOING = frozenset({TrackingStatus.PENDING, TrackingStatus.WAITING, TrackingStatus.SENDING})
"""A previous step in these states will still be sent: an added step waits for it."""


def added_step_emails(
    campaign: Campaign, added: FollowUp, previous: Sequence[EmailTracking], *, now: datetime
) -> list[EmailTracking]:
    """The emails of a step added to a running campaign, one for each person whose email of
    the step before (`previous`) was sent or will be: due after its delay from when that
    one left, or waiting for it. People whose sequence ended get none."""
    variants = len(added.wordings)
    emails = []
    for dealt, before in enumerate(previous):
        window = campaign.window_for(before.timezone)
        if before.status is TrackingStatus.SENT and before.sent_at is not None:
            status = TrackingStatus.PENDING
            moment = max(now, after_delay(before.sent_at, added.delay, window))
        elif before.status in STILL_GOING:
            status = TrackingStatus.WAITING
            moment = after_delay(before.scheduled_at or now, added.delay, window)
        else:
            continue
        emails.append(
            EmailTracking(
                id=new_object_id(),
                campaign_id=campaign.campaign_id,
                user_id=campaign.user_id,
                mailbox_id=before.mailbox_id,
                recipient_email=before.recipient_email,
                merge_variables=before.merge_variables,
                variant=dealt % variants,
                step=added.step,
                timezone=before.timezone,
                status=status,
                scheduled_at=moment,
                created_at=now,
                updated_at=now,
            )
        )
    return emails


def check_before_end(campaign: Campaign, added: FollowUp, emails: Sequence[EmailTracking]) -> None:
    """Refuse a step added to a running campaign whose emails (of people already written
    to) would be due after its end — they could only expire — naming the step, how many
    and the duration that would fit."""
    late = [
        e.scheduled_at for e in emails if e.scheduled_at and e.scheduled_at >= campaign.end_time
    ]
    if not late:
        return
    hours = math.ceil((max(late) - campaign.start_time).total_seconds() / 3600) + 1
    fix = (
        f"a duration of at least {hours} hours or a shorter delay"
        if hours <= MAX_DURATION_HOURS
        else "a shorter delay"
    )
    position = campaign.steps.index(added.step) + 1
    raise ValidationError(
        "campaign_steps",
        f"step {position} ({added.delay} after step {position - 1}) would be due after the "
        f"campaign ends ({campaign.end_time:%Y-%m-%d %H:%M} UTC) for {len(late)} "
        f"{'person' if len(late) == 1 else 'people'} already written to; {fix} would fit",
        value=added.step,
    )
