"""How a campaign's waiting emails are described: the pace in the unit that fits their
spread, whether it lasts minutes, hours or weeks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailramp.campaigns.repository import PendingSchedule
from tests.support.clock import MONDAY_MORNING


@pytest.mark.parametrize(
    ("count", "spread", "pace"),
    [
        (300, timedelta(minutes=1), "about 300 a minute"),
        (30, timedelta(minutes=10), "about 3 a minute"),
        (120, timedelta(hours=3), "about 40 an hour"),
        (12, timedelta(hours=24), "about one every 2.2 hours"),
        (2, timedelta(minutes=87), "about one every 87 minutes"),
        (2, timedelta(hours=2, minutes=3), "about one every 2 hours"),
        (1500, timedelta(weeks=2), "about 107 a day"),
        (5, timedelta(days=10), "about one every 2.5 days"),
    ],
)
def test_the_pace_reads_in_the_unit_of_the_spread(count: int, spread: timedelta, pace: str) -> None:
    schedule = PendingSchedule(count, MONDAY_MORNING, MONDAY_MORNING + spread)
    assert schedule.pace() == pace


def test_nothing_or_one_waiting_has_no_pace() -> None:
    assert PendingSchedule(0).pace() is None
    assert PendingSchedule(1, MONDAY_MORNING, MONDAY_MORNING).pace() is None
