"""The warm-up pool's rules: how many warm-up emails an opted-in mailbox sends today, to
whom, at what times, and which ones it answers.

- **Volume.** Its own ramp: `warmup_start` (2) on its first warm-up day, `warmup_step` (2)
  more after each day it sent warm-up emails, up to `warmup_max` (20). They count against
  its daily limit like any email.
- **Partners.** The other opted-in mailboxes of the installation, whoever owns them, in a
  shuffled rotation (a mailbox never writes to itself, and other domains come first), so
  each day's emails spread over the pool.
- **Times.** Business hours, 09:00 to 17:00 on weekdays in the mailbox's `warmup_timezone`,
  at random moments (never in the past): people do not write at 03:00 on a Sunday.
- **Replies.** The receiving mailbox answers `warmup_reply_percent` (30 %) of what it
  receives, chosen by the email's id, in the same thread, 10 to 90 minutes after finding it
  (inside its own business hours).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from mailramp.mailboxes.models import Mailbox, MailboxDay
from mailramp.mailboxes.ramp import is_business_day, warmup_days, warmup_volume, zone_of

OPEN_AT = time(9)
CLOSE_AT = time(17)
REPLY_DELAY_MINUTES = (10, 90)


def volume_today(mailbox: Mailbox, days: Iterable[MailboxDay], now: datetime) -> int:
    """How many warm-up conversations the mailbox opens today (0 on a weekend in its
    zone): its warm-up ramp (mailboxes/ramp.py)."""
    if not is_business_day(now, mailbox.warmup_timezone):
        return 0
    return warmup_volume(mailbox, warmup_days(days, now))


def business_hours(day: date, zone: str) -> tuple[datetime, datetime]:
    """When `day`'s business hours open and close, in UTC."""
    local = zone_of(zone)
    opens = datetime.combine(day, OPEN_AT, local)
    closes = datetime.combine(day, CLOSE_AT, local)
    return opens.astimezone(ZoneInfo("UTC")), closes.astimezone(ZoneInfo("UTC"))


def send_times(count: int, now: datetime, zone: str, rng: random.Random) -> list[datetime]:
    """`count` random moments in what is left of today's business hours in `zone` (none
    when they are over), in order."""
    opens, closes = business_hours(now.astimezone(zone_of(zone)).date(), zone)
    start = max(now, opens)
    if count <= 0 or start >= closes:
        return []
    span = (closes - start).total_seconds()
    return sorted(start + timedelta(seconds=rng.uniform(0, span)) for _ in range(count))


def partners(sender: Mailbox, pool: Sequence[Mailbox], count: int, seed: str) -> list[Mailbox]:
    """Who the sender writes to today: `count` of the pool's other mailboxes in a rotation
    shuffled by `seed`, mailboxes on other domains first."""
    others = [box for box in pool if box.id != sender.id and box.email != sender.email]
    if not others or count <= 0:
        return []
    rng = random.Random(seed)  # noqa: S311 (spreading, not secrecy)
    rng.shuffle(others)
    others.sort(key=lambda box: box.domain == sender.domain)
    return [others[n % len(others)] for n in range(count)]


def answers(email_id: str, percent: int) -> bool:
    """Whether the receiving mailbox answers the warm-up email `email_id`."""
    digest = hashlib.sha256(email_id.encode()).digest()
    return int.from_bytes(digest[:2], "big") % 100 < percent


def reply_time(found_at: datetime, zone: str, seed: str) -> datetime:
    """When to answer an email found at `found_at`: 10 to 90 minutes later, moved into the
    next business hours when that falls outside them."""
    rng = random.Random(seed)  # noqa: S311
    moment = found_at + timedelta(minutes=rng.uniform(*REPLY_DELAY_MINUTES))
    for _ in range(8):
        local_day = moment.astimezone(zone_of(zone)).date()
        opens, closes = business_hours(local_day, zone)
        if is_business_day(moment, zone) and opens <= moment < closes:
            return moment
        if moment < opens and is_business_day(moment, zone):
            return opens + timedelta(minutes=rng.uniform(0, 60))
        moment = business_hours(local_day + timedelta(days=1), zone)[0]
    return moment
