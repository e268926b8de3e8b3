"""A new mailbox's daily limit, ramped up: receivers distrust an address that goes from
nothing to fifty cold emails a day, so a mailbox not marked already warm starts low and
grows with the days it sent without a brake.

- Its `daily_limit` is the target. A ramp starts at `ramp_start` (10 by default) and grows
  by `ramp_step` (2) after each day on which it sent at least one email (campaign or
  warm-up) and no brake held it, until the target: 10, 12, 14, … 50.
- A day counts once it is over (UTC days, as the history is rolled up); a day without a
  send neither grows nor shrinks it, and a braked day does not count.
- Planning looks ahead as if every coming day were a good sending day; what the ramp holds
  back of the target is reserved on each day, so plans never place more than it allows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from mailramp.mailboxes.models import Mailbox, MailboxDay


@dataclass(frozen=True)
class Ramp:
    """From `start` a day, `step` more after each good day, up to `target`."""

    start: int
    step: int
    target: int

    def limit(self, good_days: int) -> int:
        """The daily limit after `good_days` good sending days."""
        return min(self.target, self.start + self.step * good_days)

    def ahead(self, good_days: int, days: int) -> list[int]:
        """The limits of today and the `days - 1` days after it, if each is a good day."""
        return [self.limit(good_days + n) for n in range(days)]

    def to_target(self, good_days: int) -> list[int]:
        """The limits from today until the first day at the target, if each is good."""
        left = self.target - self.limit(good_days)
        return self.ahead(good_days, -(-left // self.step) + 1)


def ramp_of(mailbox: Mailbox) -> Ramp | None:
    """The mailbox's ramp; None when it is marked already warm or already starts at its
    target."""
    if mailbox.already_warm or mailbox.ramp_start >= mailbox.daily_limit:
        return None
    return Ramp(mailbox.ramp_start, max(mailbox.ramp_step, 1), mailbox.daily_limit)


def day_key(moment: datetime | date) -> str:
    """The history's key of the UTC day of `moment`."""
    if isinstance(moment, datetime):
        moment = moment.date() if moment.tzinfo is None else moment.astimezone(UTC).date()
    return moment.isoformat()


def good_days(days: Iterable[MailboxDay], before: datetime) -> int:
    """How many days before `before`'s UTC day the mailbox sent without a brake."""
    today = day_key(before)
    return sum(1 for day in days if day.day < today and day.sent > 0 and not day.braked)


def limit_today(mailbox: Mailbox, days: Iterable[MailboxDay], now: datetime) -> int:
    """The most the mailbox may send today: its ramped limit, or its target."""
    ramp = ramp_of(mailbox)
    return mailbox.daily_limit if ramp is None else ramp.limit(good_days(days, now))


def ramp_days(mailbox: Mailbox, now: datetime, end: datetime) -> int:
    """How many days from today a plan ending at `end` must know the limits of: to `end`,
    and at least until the ramp (if any) reaches its target."""
    to_end = (end.date() - now.date()).days + 2
    ramp = ramp_of(mailbox)
    if ramp is None:
        return max(to_end, 1)
    return max(to_end, len(ramp.to_target(0)))


def limits_ahead(
    mailbox: Mailbox, days: Iterable[MailboxDay], now: datetime, count: int
) -> dict[date, int]:
    """Today's limit and the next days', by UTC date (the target when there is no ramp)."""
    ramp = ramp_of(mailbox)
    first = datetime.fromisoformat(day_key(now)).date()
    if ramp is None:
        return {first + timedelta(days=n): mailbox.daily_limit for n in range(count)}
    limits = ramp.ahead(good_days(days, now), count)
    return {first + timedelta(days=n): limit for n, limit in enumerate(limits)}


def zone_of(name: str) -> ZoneInfo:
    """The time zone called `name`; UTC when there is none by that name (a mailbox's
    `warmup_timezone` is checked when set, this only guards older data)."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def is_business_day(moment: datetime, zone: str) -> bool:
    """Whether `moment` falls on a weekday in `zone` (warm-up writes on weekdays only)."""
    return moment.astimezone(zone_of(zone)).weekday() < 5


def warmup_days(days: Iterable[MailboxDay], now: datetime) -> int:
    """How many days before today the mailbox sent warm-up emails."""
    today = day_key(now)
    return sum(1 for day in days if day.day < today and day.warmup_sent > 0)


def warmup_volume(mailbox: Mailbox, warm_days: int) -> int:
    """How many warm-up conversations a pool member opens on a weekday after `warm_days`
    days of warm-up: its own ramp, `warmup_start` (2) then `warmup_step` (2) more a day, up
    to `warmup_max` (20)."""
    return min(mailbox.warmup_max, mailbox.warmup_start + mailbox.warmup_step * warm_days)


def warmup_ahead(
    mailbox: Mailbox, days: Iterable[MailboxDay], now: datetime, count: int
) -> dict[date, int]:
    """The warm-up conversations the mailbox opens today and on the next days, by UTC
    date: none when it is not in the pool or on a weekend; what planning holds of each day's
    limit for its warm-up (its replies come on top, from the other members' share)."""
    if not mailbox.warmup_enabled:
        return {}
    warm = warmup_days(days, now)
    first = datetime.fromisoformat(day_key(now)).replace(tzinfo=UTC)
    ahead = {}
    for n in range(count):
        moment = first + timedelta(days=n, hours=12)
        if is_business_day(moment, mailbox.warmup_timezone):
            ahead[moment.date()] = warmup_volume(mailbox, warm)
            warm += 1
    return ahead
