"""The demo's warm-up day: the demo mailboxes join the warm-up pool for one past business day,
played in a few seconds on a clock of its own. They write to each other through the demo's
SMTP server, whose spam filter files some emails in Junk; each mailbox finds what it was
sent over IMAP, moves it out of Junk, marks it read and flagged, and answers a share in the
same thread. The day then shows on each mailbox's health page (its placement chart)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from mailramp.accounts.models import User
from mailramp.mailboxes.models import Mailbox
from mailramp.runtime import Runtime

WARMUP_PER_DAY = 6
"""Conversations each demo mailbox opens on its warm-up day (a new mailbox starts at 2)."""
DAY_STARTS, DAY_ENDS = time(8), time(18)
STEP = timedelta(minutes=10)
"""How far the day's clock moves between two passes of the pool."""
LOOK_BACK_DAYS = 90


@dataclass
class WarmupDay:
    """What the demo mailboxes did on their warm-up day."""

    day: date
    sent: int = 0
    found: dict[str, int] = field(default_factory=dict)
    """Where the receiving mailboxes found them: inbox, spam, other."""
    replies_planned: int = 0
    failed: int = 0
    filed_in_junk: int = 0
    """What the demo's spam filter put in Junk (the mail server's side of `found["spam"]`)."""
    health_urls: list[str] = field(default_factory=list)


class _DayClock:
    """The warm-up day's time, moved by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def _day_to_play(runtime: Runtime, user: User, mailboxes: list[Mailbox]) -> date:
    """The latest business day before today on which the demo mailboxes did no warm-up (an
    earlier demo run played the later ones)."""
    played: set[str] = set()
    for mailbox in mailboxes:
        health = await runtime.deliverability.health(user.user_id, mailbox.mailbox_id)
        played |= {day.day for day in health.history if day.warmup_sent}
    day = runtime.clock().date() - timedelta(days=1)
    for _ in range(LOOK_BACK_DAYS):
        if day.weekday() < 5 and day.isoformat() not in played:
            return day
        day -= timedelta(days=1)
    return day


async def play_warmup_day(
    runtime: Runtime, user: User, mailboxes: list[Mailbox], *, base_url: str
) -> WarmupDay:
    """Run the pool over one business day for the demo mailboxes, then leave the pool."""
    played = WarmupDay(await _day_to_play(runtime, user, mailboxes))
    for mailbox in mailboxes:
        await runtime.mailboxes.update_mailbox(
            user.user_id, mailbox.mailbox_id, warmup_enabled=True, warmup_start=WARMUP_PER_DAY
        )
    clock = _DayClock(datetime.combine(played.day, DAY_STARTS, UTC))
    pool = runtime.warmup_pool(clock=clock)
    found: Counter[str] = Counter()
    try:
        while clock.now <= datetime.combine(played.day, DAY_ENDS, UTC):
            done = await pool.run_once()
            played.sent += done.sent
            played.failed += done.failed
            played.replies_planned += done.replies_planned
            found.update(done.found)
            clock.now += STEP
    finally:
        # Out of the pool again: the demo mailboxes' servers stop with the demo.
        for mailbox in mailboxes:
            await runtime.mailboxes.update_mailbox(
                user.user_id, mailbox.mailbox_id, warmup_enabled=False
            )
    await runtime.deliverability.roll_up()
    played.found = dict(found)
    played.health_urls = [f"{base_url}/mailboxes/{m.mailbox_id}/health" for m in mailboxes]
    return played
