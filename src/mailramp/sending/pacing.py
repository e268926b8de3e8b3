"""How fast one mailbox sends, decided when its emails are about to leave.

The plan already spreads each mailbox's emails over its window within its daily limit; what
it cannot see is decided here, at the last moment: a follow-up pushed into a full day (an
out-of-office postponed it, a retry moved it, a step was added), several campaigns due at
once, a worker catching up after a pause.

- **The daily limit counts what left.** Emails the mailbox already made today (any
  campaign, any step) and those leaving now never pass its `daily_limit`; what is over waits
  for the window's next day.
- **Follow-ups first.** When the day's room is short, follow-ups take it before first
  emails: a sequence already started is worth more than a new one, and a follow-up that
  waits a day loses its thread's timing.
- **A human pace.** Two emails of one mailbox are a random gap apart (`SendGap`, a few
  minutes by default); the gap is held in the database, so any number of workers keep it.
  Planning knows the gap too (`SendGap.daily_cap`), so a plan never holds more emails a
  day than the pace lets leave.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mailramp.campaigns.models import Campaign
from mailramp.campaigns.planner import day_of, start_of_day
from mailramp.campaigns.sequencing import next_open
from mailramp.mailboxes.models import SendGap
from mailramp.tracking.models import EmailTracking


def sending_order(records: Iterable[EmailTracking]) -> list[EmailTracking]:
    """Follow-ups before first emails, each in the order they were due."""
    return sorted(records, key=lambda r: (r.step == 1, r.scheduled_at or datetime.min))


@dataclass(frozen=True)
class Pace:
    """What a mailbox's claimed records do this pass: `now` go (in order), the others are
    put back, due again at the moment given for each."""

    now: list[EmailTracking]
    later: dict[str, datetime] = field(default_factory=dict)


def counted_days(
    records: Iterable[EmailTracking], campaigns: Mapping[str, Campaign], now: datetime
) -> set[datetime]:
    """The starts of the days `within_daily_limit` counts in: today in each campaign's
    window zone, the zone its plan counted the daily limit in."""
    return {start_of_day(now, campaigns[r.campaign_id].sending_window) for r in records}


def within_daily_limit(
    records: Sequence[EmailTracking],
    campaigns: Mapping[str, Campaign],
    *,
    daily_limit: int,
    made: Mapping[datetime, int],
    now: datetime,
) -> Pace:
    """Split `records` (in sending order) into those the mailbox's day still has room for
    and those that wait for the window's next day. `made` is how many emails the mailbox
    made since each of the `counted_days`."""
    room = {day_start: daily_limit - count for day_start, count in made.items()}
    pace = Pace([])
    for record in records:
        campaign = campaigns[record.campaign_id]
        day_start = start_of_day(now, campaign.sending_window)
        if room[day_start] > 0:
            room[day_start] -= 1
            pace.now.append(record)
        else:
            pace.later[record.id] = _next_day(record, campaign, now)
    return pace


def _next_day(record: EmailTracking, campaign: Campaign, now: datetime) -> datetime:
    """When the window next opens on a later day than `now`'s (the recipient's own zone);
    a first email one second after a follow-up, so the follow-up is claimed before it."""
    window = campaign.sending_window
    today = day_of(now, window)
    moment = start_of_day(now, window) + timedelta(days=1)
    while day_of(moment, window) == today:  # a day of 25 hours (summer time ends)
        moment += timedelta(hours=1)
    moment = next_open(moment, campaign.window_for(record.timezone))
    return moment + timedelta(seconds=1 if record.step == 1 else 0)


def one_per_turn(
    pace: Pace,
    campaigns: Mapping[str, Campaign],
    *,
    taken: bool,
    next_turn: datetime,
    gap: SendGap,
) -> Pace:
    """With a gap between sends: when this pass took the mailbox's turn (`taken`), its first
    record goes; the others, or all of them when another send holds the turn, are due again
    at `next_turn` — if their window is closed by then, still at `next_turn` when it was open
    one longest gap before (a send held back a few minutes at the end of the day, as a person
    finishing their list), else at the window's next opening."""
    going = pace.now[:1] if taken else []
    later = dict(pace.later)
    reach = timedelta(seconds=gap.high_seconds)
    for record in pace.now[len(going) :]:
        window = campaigns[record.campaign_id].window_for(record.timezone)
        if next_open(next_turn - reach, window) == next_turn - reach:
            later[record.id] = next_turn
        else:
            later[record.id] = next_open(next_turn, window)
    return Pace(going, later)
