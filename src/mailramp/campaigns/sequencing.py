"""Planning a sequence: when every step of every recipient goes out, and from which of the
campaign's mailboxes.

Each recipient gets one mailbox for the whole sequence; recipients are shared out by the
mailboxes' free capacity. A mailbox places whole sequences: a first email is accepted on a
day only if it and each of its follow-ups (`delay` after the previous step, counted in
sending days when the window skips weekdays, then moved to the window's next opening) land
on days that still have room under the daily limit, before the campaign ends. Follow-ups
are committed with their first email, so a later first email can never take a follow-up's
place. First emails are spread evenly over the days (as `planner.plan` spreads one step);
what the even spread leaves out is then fitted wherever room remains.

Pure functions of their inputs (the jitter is seeded by the campaign), like `planner`.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

from mailramp.campaigns.models import MAX_DURATION_HOURS, SendingWindow, StepDelay
from mailramp.campaigns.planner import (
    UTC_ZONE,
    OpenDay,
    PlanRequest,
    day_of,
    least_passing,
    open_days,
    remedy,
    slot_times,
    spread,
)
from mailramp.campaigns.repository import Slot
from mailramp.errors import PlanError, ValidationError


def next_open(moment: datetime, window: SendingWindow | None) -> datetime:
    """`moment`, or the window's next opening when the window is closed then."""
    if window is None:
        return moment
    zone = window.zone
    local = moment.astimezone(zone)
    for ahead in range(8):
        day = local.date() + timedelta(days=ahead)
        if day.weekday() not in window.days:
            continue
        opens = datetime.combine(day, time(window.start_hour), zone)
        closes = (
            datetime.combine(day + timedelta(days=1), time(0), zone)
            if window.end_hour == 24
            else datetime.combine(day, time(window.end_hour), zone)
        )
        if local < closes:
            return max(local, opens).astimezone(UTC)
    raise AssertionError("a sending window opens at least once a week")  # pragma: no cover


def after_delay(moment: datetime, delay: StepDelay, window: SendingWindow | None) -> datetime:
    """The earliest moment a follow-up may go, `delay` after the previous email sent at
    `moment`: its days are sending days when the window skips some weekdays (Friday + 1 day
    is Monday), its hours wall-clock hours; the result is moved to the window's next
    opening when the window is closed then."""
    zone = window.zone if window else UTC_ZONE
    local = moment.astimezone(zone)
    if window is not None and len(window.days) < 7:
        remaining = delay.days
        while remaining:
            local += timedelta(days=1)
            if local.weekday() in window.days:
                remaining -= 1
    else:
        local += timedelta(days=delay.days)
    local += timedelta(hours=delay.hours)
    return next_open(local.astimezone(UTC), window)


@dataclass(frozen=True)
class SenderCapacity:
    """One of the campaign's mailboxes: its daily limit, and the sends other campaigns
    already hold on it per day (in the window's zone)."""

    mailbox_id: str
    daily_limit: int
    already_planned: Mapping[date, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SequenceRequest:
    """What a sequence plan must respect."""

    start: datetime
    end: datetime
    recipients: int
    follow_ups: tuple[StepDelay, ...]
    mailboxes: tuple[SenderCapacity, ...]
    window: SendingWindow | None = None
    seed: str = ""
    zones: tuple[str | None, ...] = ()
    """Each recipient's own time zone, in order (None: the window's); empty: everyone in
    the window's. The window's days and hours apply in the recipient's zone; the daily
    limits count days of the window's zone (a mailbox's day is one whoever it writes to)."""


@dataclass(frozen=True)
class PlannedRecipient:
    """One recipient's mailbox (an index into the request's mailboxes), the moment of each
    of their steps, step 1 first, and their time zone (None: the window's)."""

    mailbox: int
    times: tuple[datetime, ...]
    zone: str | None = None


@dataclass(frozen=True)
class DayLoad:
    """What one mailbox sends on one day of the plan."""

    mailbox_id: str
    day: date
    first_emails: int
    follow_ups: int
    daily_limit: int | None = None
    """The mailbox's limit that day: its ramp's while it ramps up (mailboxes/ramp.py)."""


@dataclass(frozen=True)
class SequencePlan:
    """Every recipient's mailbox and step times, in the order of their first email."""

    request: SequenceRequest
    recipients: list[PlannedRecipient]

    def per_day(self) -> list[DayLoad]:
        """How many first emails and follow-ups each mailbox sends each day, by day."""
        firsts: Counter[tuple[int, date]] = Counter()
        later: Counter[tuple[int, date]] = Counter()
        window = self.request.window
        for planned in self.recipients:
            firsts[planned.mailbox, day_of(planned.times[0], window)] += 1
            for moment in planned.times[1:]:
                later[planned.mailbox, day_of(moment, window)] += 1
        keys = sorted(set(firsts) | set(later), key=lambda key: (key[1], key[0]))
        boxes = self.request.mailboxes
        return [
            DayLoad(boxes[index].mailbox_id, day, firsts[index, day], later[index, day])
            for index, day in keys
        ]


def day_loads(slots: Sequence[Slot], window: SendingWindow | None) -> list[DayLoad]:
    """Waiting emails as each mailbox's load per day — first emails and follow-ups — (days
    of the window's zone, as its daily limit counts them; UTC without a window), by day
    then mailbox. A follow-up waiting for the step before it counts on its planned day."""
    firsts = Counter((s.mailbox_id, day_of(s.at, window)) for s in slots if s.step == 1)
    later = Counter((s.mailbox_id, day_of(s.at, window)) for s in slots if s.step != 1)
    ordered = sorted(set(firsts) | set(later), key=lambda key: (key[1], key[0]))
    return [DayLoad(box, day, firsts[box, day], later[box, day]) for box, day in ordered]


@dataclass
class _Sender:
    """One mailbox while its sequences are placed: its daily limit, what other campaigns
    hold per day, and what this plan placed per day (days of the window's zone)."""

    index: int
    daily_limit: int
    already: Mapping[date, int]
    load: Counter[date] = field(default_factory=Counter)

    def capacity(self, day: date) -> int:
        """What the daily limit leaves on `day` after the other campaigns' sends."""
        return max(self.daily_limit - self.already.get(day, 0), 0)

    def has_room(self, day: date, extra: int = 1) -> bool:
        return self.load[day] + extra <= self.capacity(day)


@dataclass(frozen=True)
class _Group:
    """Recipients who share a time zone: the window as it applies to them, how many, and
    the days a first email of theirs may go (each ending where a later one's sequence would
    no longer fit)."""

    zone: str | None
    window: SendingWindow | None
    count: int
    days: tuple[OpenDay, ...]


def _groups(request: SequenceRequest) -> list[_Group]:
    """The request's recipients by time zone, the largest group first."""
    counts = Counter(request.zones) if request.zones else Counter({None: request.recipients})
    groups = []
    for zone, count in sorted(counts.items(), key=lambda item: (-item[1], item[0] or "")):
        window = request.window
        if zone is not None and window is not None:
            window = window.model_copy(update={"timezone": zone})
        single = PlanRequest(
            start=request.start, end=request.end, count=0, daily_limit=0, window=window
        )
        days = []
        for open_day in open_days(single):
            last = _last_first(open_day, request, window)
            if last is not None:
                days.append(replace(open_day, closes=last))
        groups.append(_Group(zone, window, count, tuple(days)))
    return groups


def _days(sender: _Sender, request: SequenceRequest, group: _Group) -> list[OpenDay]:
    """The group's days, each with what the mailbox's limit leaves on the day (of the
    window's zone) it opens in."""
    return [
        replace(d, capacity=sender.capacity(day_of(d.opens, request.window))) for d in group.days
    ]


def _last_first(
    open_day: OpenDay, request: SequenceRequest, window: SendingWindow | None
) -> datetime | None:
    """Where a first email's slot range ends on this day: just after the last moment from
    which the whole sequence still ends before the campaign does (a later first email's
    follow-ups would fall outside it); None when no moment of the day is early enough.
    A step's moment never goes back when the first moves later, so a bisection finds it."""
    if not request.follow_ups:
        return open_day.closes
    if _sequence(open_day.opens, request, window) is None:
        return None
    early, late = open_day.opens, open_day.closes
    while (late - early) > timedelta(seconds=1):
        middle = early + (late - early) / 2
        if _sequence(middle, request, window) is None:
            late = middle
        else:
            early = middle
    return min(early + timedelta(milliseconds=1), open_day.closes)


def _free(sender: _Sender, request: SequenceRequest, group: _Group) -> int:
    """The sends the mailbox can still take in the group's open hours."""
    return sum(
        max(d.capacity - sender.load[day_of(d.opens, request.window)], 0)
        for d in _days(sender, request, group)
    )


def _sequence(
    first: datetime, request: SequenceRequest, window: SendingWindow | None
) -> tuple[datetime, ...] | None:
    """The moments of a whole sequence starting at `first` (its delays in `window`, the
    recipient's); None when a step would fall at or after the campaign's end."""
    times = [first]
    for delay in request.follow_ups:
        moment = after_delay(times[-1], delay, window)
        if moment >= request.end:
            return None
        times.append(moment)
    return tuple(times)


def _try_place(
    sender: _Sender, first: datetime, request: SequenceRequest, group: _Group
) -> tuple[datetime, ...] | None:
    times = _sequence(first, request, group.window)
    if times is None:
        return None
    days = Counter(day_of(moment, request.window) for moment in times)
    if not all(sender.has_room(day, count) for day, count in days.items()):
        return None
    sender.load.update(days)
    return times


def _place(
    sender: _Sender, count: int, request: SequenceRequest, group: _Group
) -> list[tuple[datetime, ...]]:
    """Up to `count` whole sequences of the group on one mailbox: first the even spread,
    then wherever room remains."""
    seed = f"{request.seed}:{sender.index}:{request.start.isoformat()}:{count}"
    rng = random.Random(seed if group.zone is None else f"{seed}:{group.zone}")  # noqa: S311 - jitter, not security
    placed: list[tuple[datetime, ...]] = []
    usable = [d for d in _days(sender, request, group) if d.capacity]
    if not usable or count <= 0:
        return placed
    targets = spread(usable, min(count, sum(d.capacity for d in usable)))
    for open_day, target in zip(usable, targets, strict=True):
        for first in slot_times(open_day, target, rng):
            if len(placed) < count and (times := _try_place(sender, first, request, group)):
                placed.append(times)
    for open_day in usable:
        if len(placed) >= count:
            break
        room = open_day.capacity - sender.load[day_of(open_day.opens, request.window)]
        for first in slot_times(open_day, min(room, count - len(placed)), rng):
            if len(placed) < count and (times := _try_place(sender, first, request, group)):
                placed.append(times)
    return placed


def _shares(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainders; ties to the first)."""
    whole = sum(weights)
    if whole == 0:
        return [0] * len(weights)
    exact = [total * weight / whole for weight in weights]
    shares = [math.floor(value) for value in exact]
    order = sorted(range(len(weights)), key=lambda i: (shares[i] - exact[i], i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def _fit(request: SequenceRequest) -> list[PlannedRecipient]:
    """As many whole sequences as fit, up to `request.recipients`: group by group (time
    zone), each shared out by the mailboxes' free room, what a mailbox could not take
    going to the others, most free room first."""
    senders = [
        _Sender(index, mailbox.daily_limit, mailbox.already_planned)
        for index, mailbox in enumerate(request.mailboxes)
    ]
    steps = len(request.follow_ups) + 1
    planned: list[PlannedRecipient] = []
    for group in _groups(request):
        free = [_free(sender, request, group) // steps for sender in senders]
        found: list[PlannedRecipient] = []
        for sender, share in zip(senders, _shares(group.count, free), strict=True):
            found += [
                PlannedRecipient(sender.index, times, group.zone)
                for times in _place(sender, share, request, group)
            ]
        for sender in sorted(senders, key=lambda s: (-_free(s, request, group), s.index)):
            missing = group.count - len(found)
            if missing <= 0:
                break
            found += [
                PlannedRecipient(sender.index, times, group.zone)
                for times in _place(sender, missing, request, group)
            ]
        planned += found
    planned.sort(key=lambda p: (p.times[0], p.mailbox))
    return planned


def plan_sequences(request: SequenceRequest) -> SequencePlan:
    """Every recipient's mailbox and step times; PlanError (saying what would fit) when not
    every whole sequence fits the window and the mailboxes' daily limits."""
    if not request.mailboxes:
        raise ValidationError("mailbox_ids", "a campaign needs at least one mailbox")
    planned = _fit(request)
    if len(planned) < request.recipients:
        raise _does_not_fit(request, len(planned))
    return SequencePlan(request, planned)


def _does_not_fit(request: SequenceRequest, fit: int) -> PlanError:
    steps = len(request.follow_ups) + 1
    hours = (request.end - request.start).total_seconds() / 3600
    needed_hours = _needed_duration(request)
    needed_boxes = _needed_mailboxes(request)
    more = f"{needed_boxes} mailboxes like the first" if needed_boxes is not None else None
    fix = remedy(needed_hours, more, otherwise="fewer recipients or shorter delays")
    boxes = len(request.mailboxes)
    sequences = f" with their {steps} steps" if steps > 1 else ""
    senders = f"{boxes} mailbox{'es' * (boxes != 1)}"
    return PlanError(
        f"only {fit} of {request.recipients} recipients fit{sequences} in {hours:g} hours "
        f"from {senders}; {fix} would fit them all",
        fit=fit,
        wanted=request.recipients,
        needed_duration_hours=needed_hours,
        needed_mailboxes=needed_boxes,
    )


SEARCH_LIMIT = 14
"""How many plans the search for a fix may try (each is a whole plan)."""


def _fits(request: SequenceRequest) -> bool:
    return len(_fit(request)) >= request.recipients


def _needed_duration(request: SequenceRequest) -> float | None:
    """The shortest whole number of hours (within a year) that fits everyone, if any."""
    low = math.ceil((request.end - request.start).total_seconds() / 3600)
    hours = least_passing(
        low,
        MAX_DURATION_HOURS,
        lambda hours: _fits(_with_hours(request, hours)),
        tries=SEARCH_LIMIT,
    )
    return None if hours is None else float(hours)


def _with_hours(request: SequenceRequest, hours: int) -> SequenceRequest:
    return replace(request, end=request.start + timedelta(hours=hours))


def _needed_mailboxes(request: SequenceRequest) -> int | None:
    """How many mailboxes with the first one's limit (and no other load) would fit everyone,
    up to 100."""
    first = request.mailboxes[0]
    low, high = len(request.mailboxes) + 1, 100

    def fits(count: int) -> bool:
        boxes = (SenderCapacity(f"{first.mailbox_id}-{n}", first.daily_limit) for n in range(count))
        return _fits(replace(request, mailboxes=tuple(boxes)))

    return least_passing(low, high, fits, tries=SEARCH_LIMIT)
