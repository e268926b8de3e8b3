"""The planner as a pure function: spread, jitter, daily limits, sending windows."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailramp.campaigns.models import SendingWindow
from mailramp.campaigns.planner import PlanRequest, capacity, day_of, plan
from mailramp.errors import PlanError

MONDAY = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def test_even_spread_with_bounded_jitter() -> None:
    times = plan(
        PlanRequest(
            start=MONDAY, end=MONDAY + timedelta(hours=10), count=10, daily_limit=100, seed="x"
        )
    )
    assert len(times) == 10 and times == sorted(times)
    for slot, moment in enumerate(times):
        ideal = MONDAY + timedelta(hours=slot + 0.5)
        assert abs((moment - ideal).total_seconds()) <= 0.4 * 3600 + 1
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert len(set(gaps)) > 1  # jittered, not machine-regular


def test_same_seed_same_plan_other_seed_other_plan() -> None:
    request = PlanRequest(
        start=MONDAY, end=MONDAY + timedelta(hours=5), count=20, daily_limit=100, seed="campaign-a"
    )
    assert plan(request) == plan(request)
    other = PlanRequest(
        start=MONDAY, end=MONDAY + timedelta(hours=5), count=20, daily_limit=100, seed="campaign-b"
    )
    assert plan(other) != plan(request)


def test_daily_limit_spreads_across_days() -> None:
    times = plan(
        PlanRequest(start=MONDAY, end=MONDAY + timedelta(days=3), count=120, daily_limit=40)
    )
    per_day = Counter(moment.date() for moment in times)
    assert max(per_day.values()) <= 40 and sum(per_day.values()) == 120


def test_sending_window_weekdays_and_hours_in_its_time_zone() -> None:
    window = SendingWindow(
        days=(0, 1, 2, 3, 4), start_hour=9, end_hour=17, timezone="America/New_York"
    )
    friday = datetime(2027, 3, 5, 12, 0, tzinfo=UTC)
    times = plan(
        PlanRequest(
            start=friday, end=friday + timedelta(days=4), count=30, daily_limit=50, window=window
        )
    )
    zone = window.zone
    for moment in times:
        local = moment.astimezone(zone)
        assert local.weekday() < 5
        assert 9 <= local.hour < 17
    assert {moment.astimezone(zone).date().isoformat() for moment in times} >= {"2027-03-08"}


def test_already_planned_sends_of_the_mailbox_count_against_the_limit() -> None:
    request = PlanRequest(
        start=MONDAY,
        end=MONDAY + timedelta(hours=8),
        count=5,
        daily_limit=10,
        already_planned={MONDAY.date(): 7},
    )
    assert capacity(request) == 3
    with pytest.raises(PlanError) as caught:
        plan(request)
    assert caught.value.fit == 3 and caught.value.needed_daily_limit == 12


def test_a_window_with_no_open_time_says_so() -> None:
    saturday = datetime(2027, 3, 6, 10, 0, tzinfo=UTC)
    window = SendingWindow(days=(0,), start_hour=9, end_hour=10)
    with pytest.raises(PlanError) as caught:
        plan(
            PlanRequest(
                start=saturday,
                end=saturday + timedelta(hours=4),
                count=1,
                daily_limit=10,
                window=window,
            )
        )
    assert caught.value.fit == 0
    assert caught.value.needed_daily_limit is None
    assert caught.value.needed_duration_hours is not None  # reaching Monday 09:00 fits


def test_sending_window_validation() -> None:
    with pytest.raises(ValueError, match="end_hour"):
        SendingWindow(start_hour=17, end_hour=9)
    with pytest.raises(ValueError, match="unknown time zone"):
        SendingWindow(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="weekdays"):
        SendingWindow(days=(7,))


@settings(max_examples=150, deadline=None)
@given(
    start_offset=st.integers(min_value=0, max_value=7 * 24 * 60),
    hours=st.floats(min_value=0.5, max_value=24 * 10),
    count=st.integers(min_value=0, max_value=400),
    daily_limit=st.integers(min_value=1, max_value=120),
    days=st.sets(st.integers(min_value=0, max_value=6), min_size=1),
    start_hour=st.integers(min_value=0, max_value=22),
    length=st.integers(min_value=1, max_value=12),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata"]),
    with_window=st.booleans(),
)
def test_any_plan_that_fits_respects_every_rule(
    start_offset: int,
    hours: float,
    count: int,
    daily_limit: int,
    days: set[int],
    start_hour: int,
    length: int,
    zone: str,
    with_window: bool,
) -> None:
    start = MONDAY + timedelta(minutes=start_offset)
    end = start + timedelta(hours=hours)
    window = (
        SendingWindow(
            days=tuple(days),
            start_hour=start_hour,
            end_hour=min(start_hour + length, 24),
            timezone=zone,
        )
        if with_window
        else None
    )
    request = PlanRequest(
        start=start, end=end, count=count, daily_limit=daily_limit, window=window, seed="p"
    )
    fit = capacity(request)
    if count > fit:
        with pytest.raises(PlanError) as caught:
            plan(request)
        assert caught.value.fit == fit
        return
    times = plan(request)
    assert len(times) == count and times == sorted(times)
    assert all(start <= moment < end for moment in times)
    per_day = Counter(day_of(moment, window) for moment in times)
    assert all(n <= daily_limit for n in per_day.values())
    if window is not None:
        for moment in times:
            local = moment.astimezone(window.zone)
            assert local.weekday() in window.days
            assert window.start_hour <= local.hour < window.end_hour
