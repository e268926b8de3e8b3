"""When each recipient is sent: spread evenly across the campaign window, with jitter,
inside the sending hours and the mailbox's daily limit.

Pure functions of their inputs (the jitter is seeded by the campaign), so a plan can be
tested without a clock or a database.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from mailramp.campaigns.models import MAX_DURATION_HOURS, SendingWindow
from mailramp.errors import PlanError

JITTER = 0.4
"""Each send moves by up to ±40% of the even spacing, so sends do not look machine-timed."""

UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class PlanRequest:
    """What a plan must respect."""

    start: datetime
    end: datetime
    count: int
    daily_limit: int
    window: SendingWindow | None = None
    already_planned: Mapping[date, int] = field(default_factory=dict)
    """Sends other campaigns of the same mailbox already hold, per day of the window's zone."""
    seed: str = ""


@dataclass(frozen=True)
class OpenDay:
    """One calendar day of a window (in its zone): when sends may go out, and how many may."""

    day: date
    opens: datetime
    closes: datetime
    capacity: int

    @property
    def seconds(self) -> float:
        return (self.closes - self.opens).total_seconds()


def day_of(moment: datetime, window: SendingWindow | None) -> date:
    """The calendar day a send counts against, in the window's zone (UTC without one)."""
    zone = window.zone if window else UTC_ZONE
    return moment.astimezone(zone).date()


def start_of_day(moment: datetime, window: SendingWindow | None) -> datetime:
    """Midnight (UTC) beginning the calendar day `moment` counts against."""
    zone = window.zone if window else UTC_ZONE
    return datetime.combine(day_of(moment, window), time(0), zone).astimezone(UTC)


def open_days(
    request: PlanRequest, *, daily_limit: int | None = None, end: datetime | None = None
) -> list[OpenDay]:
    """The days of `[request.start, end)` the window opens on, each with its open hours and
    what `daily_limit` leaves after the sends other campaigns already hold (the request's
    end and limit unless given)."""
    daily_limit = request.daily_limit if daily_limit is None else daily_limit
    end = request.end if end is None else end
    window = request.window
    zone = window.zone if window else UTC_ZONE
    first = request.start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    days = []
    current = first
    while current <= last:
        if window is None:
            opens = datetime.combine(current, time(0), zone)
            closes = datetime.combine(current + timedelta(days=1), time(0), zone)
        elif current.weekday() in window.days:
            opens = datetime.combine(current, time(window.start_hour), zone)
            closes = (
                datetime.combine(current + timedelta(days=1), time(0), zone)
                if window.end_hour == 24
                else datetime.combine(current, time(window.end_hour), zone)
            )
        else:
            current += timedelta(days=1)
            continue
        opens = max(opens.astimezone(UTC), request.start)
        closes = min(closes.astimezone(UTC), end)
        if closes > opens:
            capacity = max(daily_limit - request.already_planned.get(current, 0), 0)
            days.append(OpenDay(current, opens, closes, capacity))
        current += timedelta(days=1)
    return days


def capacity(request: PlanRequest) -> int:
    """How many sends fit the window at all."""
    return sum(d.capacity for d in open_days(request))


def check_fits(request: PlanRequest) -> None:
    """Raise PlanError (saying what would fit) unless `count` sends fit the window."""
    fit = capacity(request)
    if fit < request.count:
        raise _does_not_fit(request, fit)


def plan(request: PlanRequest) -> list[datetime]:
    """`count` send times, ascending, inside the window; PlanError when they do not fit."""
    if request.count == 0:
        return []
    days = [d for d in open_days(request) if d.capacity]
    fit = sum(d.capacity for d in days)
    if fit < request.count:
        raise _does_not_fit(request, fit)
    quotas = spread(days, request.count)
    rng = random.Random(f"{request.seed}:{request.start.isoformat()}:{request.count}")  # noqa: S311 - jitter, not security
    times: list[datetime] = []
    for day, quota in zip(days, quotas, strict=True):
        times.extend(slot_times(day, quota, rng))
    times.sort()
    return times


def slot_times(day: OpenDay, count: int, rng: random.Random) -> list[datetime]:
    """`count` moments spread evenly over the day's open hours, each moved by up to
    ±JITTER of the spacing, to the millisecond (what the databases keep)."""
    if count <= 0:
        return []
    spacing = day.seconds / count
    times = []
    for slot in range(count):
        offset = (slot + 0.5 + rng.uniform(-JITTER, JITTER)) * spacing
        offset = min(max(offset, 0.0), day.seconds - 0.001)
        moment = day.opens + timedelta(seconds=offset)
        times.append(moment.replace(microsecond=moment.microsecond // 1000 * 1000))
    return times


def spread(days: list[OpenDay], count: int) -> list[int]:
    """Split `count` across days in proportion to their open time, never above a day's
    capacity (water-filling: saturated days are fixed and the rest re-shared)."""
    quotas = [0] * len(days)
    open_days = set(range(len(days)))
    remaining = count
    while True:
        total = sum(days[i].seconds for i in open_days)
        saturated = {
            i for i in open_days if remaining * days[i].seconds / total >= days[i].capacity
        }
        if not saturated:
            break
        for i in saturated:
            quotas[i] = days[i].capacity
            remaining -= days[i].capacity
        open_days -= saturated
        if not open_days or remaining == 0:
            return quotas
    shares = {i: remaining * days[i].seconds / total for i in open_days}
    for i, share in shares.items():
        quotas[i] = math.floor(share)
    leftover = remaining - sum(quotas[i] for i in open_days)
    by_remainder = sorted(open_days, key=lambda i: shares[i] - quotas[i], reverse=True)
    for i in by_remainder[:leftover]:
        quotas[i] += 1
    return quotas


def remedy(needed_hours: float | None, other: str | None, *, otherwise: str) -> str:
    """What would fit everyone, as a refusal words it: a longer duration, or `other`."""
    fixes = [f"a duration of at least {needed_hours:g} hours"] if needed_hours is not None else []
    fixes += [other] if other else []
    return " or ".join(fixes) if fixes else otherwise


def _does_not_fit(request: PlanRequest, fit: int) -> PlanError:
    needed_limit = _needed_daily_limit(request)
    needed_hours = _needed_duration(request)
    hours = (request.end - request.start).total_seconds() / 3600
    window = request.window
    where = (
        f", sending {','.join(_WEEKDAYS[d] for d in window.days)} "
        f"{window.start_hour:02d}:00-{window.end_hour:02d}:00 {window.timezone}"
        if window
        else ""
    )
    limit = f"a daily limit of at least {needed_limit}" if needed_limit is not None else None
    fix = remedy(needed_hours, limit, otherwise="fewer recipients")
    return PlanError(
        f"only {fit} of {request.count} recipients fit in {hours:g} hours at a daily limit of "
        f"{request.daily_limit}{where}; {fix} would fit them all",
        fit=fit,
        wanted=request.count,
        needed_duration_hours=needed_hours,
        needed_daily_limit=needed_limit,
    )


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _needed_daily_limit(request: PlanRequest) -> int | None:
    def fits(limit: int) -> bool:
        days = open_days(request, daily_limit=limit, end=request.end)
        return sum(d.capacity for d in days) >= request.count

    high = request.count + max(request.already_planned.values(), default=0)
    # None: no open time in the window at all.
    return least_passing(request.daily_limit, high, fits)


def least_passing(
    low: int, high: int, passes: Callable[[int], bool], *, tries: int | None = None
) -> int | None:
    """The least n in [low, high] that `passes` (which must stay true once it is), by
    bisection; None when even `high` does not pass. With `tries`, at most that many more
    probes: the answer then passes but may not be the least."""
    if not passes(high):
        return None
    probes = 0
    while low < high and (tries is None or probes < tries):
        middle = (low + high) // 2
        probes += 1
        if passes(middle):
            high = middle
        else:
            low = middle + 1
    return high


def _needed_duration(request: PlanRequest) -> float | None:
    hours = max(math.ceil((request.end - request.start).total_seconds() / 3600), 1)
    while hours <= MAX_DURATION_HOURS:
        end = request.start + timedelta(hours=hours)
        days = open_days(request, daily_limit=request.daily_limit, end=end)
        if sum(d.capacity for d in days) >= request.count:
            return float(hours)
        hours += 1 if hours < 72 else 24
    return None
