"""Time in tests: a clock the test moves, and times built from the clock the code is given.

The rule (README, Development): a test never depends on today's date. Code under test gets
its "now" from a `Clock`; a test either hands it a `FakeClock` — then fixed calendar dates
are fine, they are the same clock — or, where the code runs on the system clock (a
`mailramp serve` subprocess, the CLI), builds every time relative to that clock with
`system_now()`. CI runs the date-sensitive tests again with the system clock years ahead
(`scripts/test-shifted-clock`) to prove it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from mailramp.kit.clock import truncate

MONDAY_MORNING = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
"""Where fake clocks start unless a test says otherwise: a Monday, 09:00 UTC, so sending
windows and weekends are predictable."""


class FakeClock:
    """Time that moves only when the test says so."""

    def __init__(self, now: datetime = MONDAY_MORNING) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move forward by `timedelta(**delta)`; returns the new now."""
        self.now += timedelta(**delta)
        return self.now


def system_now() -> datetime:
    """The system clock, as code that is not handed a clock (a subprocess) reads it."""
    return truncate(datetime.now(UTC))


def next_monday(now: datetime, *, hour: int = 9, weeks: int = 1) -> datetime:
    """A Monday at `hour`:00 UTC at least `weeks` weeks after `now` — a future campaign
    start whose weekday and hour are known, whatever day the test runs on."""
    day = now.astimezone(UTC).date() + timedelta(weeks=weeks)
    day += timedelta(days=(7 - day.weekday()) % 7)
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def real_time_environment() -> dict[str, str]:
    """This process's environment without libfaketime, for servers that stand in for other
    machines (Dovecot): their clocks are not ours to move, and Dovecot's master would run
    shifted while it drops the preload for its own children."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME")}
    preload = [
        library
        for library in environment.pop("LD_PRELOAD", "").split()
        if "faketime" not in library
    ]
    if preload:
        environment["LD_PRELOAD"] = " ".join(preload)
    return environment
