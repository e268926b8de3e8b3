"""The sequence planner as a pure function: every step of every recipient inside the
window and the campaign, after its delay, from one mailbox per person, never a day over a
mailbox's limit — or a refusal that says what would fit."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailramp.campaigns.models import SendingWindow, StepDelay
from mailramp.campaigns.planner import day_of
from mailramp.campaigns.sequencing import (
    SenderCapacity,
    SequenceRequest,
    after_delay,
    plan_sequences,
)
from mailramp.errors import PlanError

MONDAY = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
OFFICE = SendingWindow(days=(0, 1, 2, 3, 4), start_hour=9, end_hour=17, timezone="UTC")


def at(day: int, hour: float) -> datetime:
    """Day `day` of the week of MONDAY (0 = Monday), at `hour` UTC."""
    return datetime(2027, 3, 1, tzinfo=UTC) + timedelta(days=day, hours=hour)


@pytest.mark.parametrize(
    ("sent", "delay", "window", "expected"),
    [
        (at(4, 10), StepDelay(days=1), OFFICE, at(7, 10)),  # Friday + 1 sending day: Monday
        (at(3, 10), StepDelay(days=2), OFFICE, at(7, 10)),  # Thursday + 2: Monday
        (at(4, 10), StepDelay(days=1), None, at(5, 10)),  # no window: Saturday
        (at(4, 16.5), StepDelay(hours=1), OFFICE, at(7, 9)),  # after hours: Monday's opening
        (at(0, 10), StepDelay(days=2, hours=3), OFFICE, at(2, 13)),
        (at(5, 12), StepDelay(days=1), OFFICE, at(7, 12)),  # from a Saturday: Monday counts
    ],
)
def test_a_delay_counts_sending_days_and_lands_inside_the_window(
    sent: datetime, delay: StepDelay, window: SendingWindow | None, expected: datetime
) -> None:
    assert after_delay(sent, delay, window) == expected


def test_a_day_is_a_calendar_day_across_a_clock_change() -> None:
    paris = SendingWindow(days=tuple(range(7)), start_hour=8, end_hour=20, timezone="Europe/Paris")
    saturday = datetime(2027, 3, 27, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
    sunday = after_delay(saturday, StepDelay(days=1), paris).astimezone(ZoneInfo("Europe/Paris"))
    assert (sunday.day, sunday.hour, sunday.minute) == (28, 10, 0)  # 23 hours later


def _request(**fields: object) -> SequenceRequest:
    values: dict[str, object] = {
        "start": MONDAY,
        "end": MONDAY + timedelta(days=14),
        "recipients": 100,
        "follow_ups": (StepDelay(days=2), StepDelay(days=3)),
        "mailboxes": (SenderCapacity("a", 40), SenderCapacity("b", 40)),
        "window": OFFICE,
        "seed": "campaign-1",
    }
    values.update(fields)
    return SequenceRequest(**values)  # type: ignore[arg-type]


def _assert_sound(request: SequenceRequest) -> None:
    """What every plan must hold."""
    plan = plan_sequences(request)
    assert len(plan.recipients) == request.recipients
    load: Counter[tuple[int, object]] = Counter()
    for planned in plan.recipients:
        # The window's days and hours hold in the recipient's own zone; the daily limits
        # count days of the window's zone.
        own = request.window
        if own is not None and planned.zone is not None:
            own = own.model_copy(update={"timezone": planned.zone})
        assert len(planned.times) == len(request.follow_ups) + 1
        assert request.start <= planned.times[0] and planned.times[-1] < request.end
        for previous, moment, delay in zip(
            planned.times, planned.times[1:], request.follow_ups, strict=False
        ):
            assert moment == after_delay(previous, delay, own)
        for moment in planned.times:
            load[planned.mailbox, day_of(moment, request.window)] += 1
            if own is not None:
                local = moment.astimezone(own.zone)
                assert local.weekday() in own.days
                assert own.start_hour <= local.hour < own.end_hour
    if request.zones:
        assert Counter(p.zone for p in plan.recipients) == Counter(request.zones)
    for (index, day), count in load.items():
        mailbox = request.mailboxes[index]
        assert count <= mailbox.daily_limit - mailbox.already_planned.get(day, 0), (day, count)
    days = plan.per_day()
    assert sum(d.first_emails for d in days) == request.recipients
    assert sum(d.follow_ups for d in days) == request.recipients * len(request.follow_ups)


def test_recipients_are_shared_by_free_capacity_and_keep_one_mailbox() -> None:
    request = _request()
    plan = plan_sequences(request)
    _assert_sound(request)
    assert Counter(p.mailbox for p in plan.recipients) == {0: 50, 1: 50}
    busy = _request(
        mailboxes=(
            SenderCapacity("a", 40),
            SenderCapacity("b", 40, {MONDAY.date() + timedelta(days=d): 30 for d in range(14)}),
        )
    )
    shares = Counter(p.mailbox for p in plan_sequences(busy).recipients)
    assert shares[0] > 2 * shares[1] > 0  # b has a quarter of a's free room
    assert plan_sequences(request) == plan  # the same request, the same plan


def test_follow_ups_are_booked_with_their_first_email_so_no_day_overflows() -> None:
    # 10 a day for 5 sending days, 3 steps a day apart: a first email on Thursday or
    # Friday could not be followed up in time, and each day holds first emails and the
    # follow-ups of earlier days, never more than 10 in all: 10 people fit, 11 do not.
    request = _request(
        end=MONDAY + timedelta(days=5),
        recipients=10,
        follow_ups=(StepDelay(days=1), StepDelay(days=1)),
        mailboxes=(SenderCapacity("a", 10),),
    )
    _assert_sound(request)
    days = plan_sequences(request).per_day()
    loads = {d.day.isoformat(): (d.first_emails, d.follow_ups) for d in days}
    assert all(first + later <= 10 for first, later in loads.values())
    with_first_emails = {day for day, (first, _) in loads.items() if first}
    assert with_first_emails <= {"2027-03-01", "2027-03-02", "2027-03-03"}
    with pytest.raises(PlanError):
        plan_sequences(replace(request, recipients=11))


def test_a_plan_that_cannot_fit_says_which_duration_or_mailboxes_would() -> None:
    request = _request(
        end=MONDAY + timedelta(days=5),
        recipients=40,
        follow_ups=(StepDelay(days=1), StepDelay(days=1)),
        mailboxes=(SenderCapacity("a", 10),),
    )
    with pytest.raises(PlanError) as refused:
        plan_sequences(request)
    error = refused.value
    assert error.field == "total_recipients" and error.fit < 40
    assert error.detail.startswith(f"only {error.fit} of 40 recipients fit with their 3 steps")
    assert error.needed_duration_hours is not None and error.needed_mailboxes is not None
    assert f"a duration of at least {error.needed_duration_hours:g} hours" in error.detail
    assert f"or {error.needed_mailboxes} mailboxes like the first" in error.detail
    # Each remedy really fits, and one hour or one mailbox less does not.
    longer = replace(request, end=MONDAY + timedelta(hours=error.needed_duration_hours))
    _assert_sound(longer)
    with pytest.raises(PlanError):
        plan_sequences(replace(longer, end=longer.end - timedelta(hours=1)))
    boxes = tuple(SenderCapacity(f"m{n}", 10) for n in range(error.needed_mailboxes))
    _assert_sound(replace(request, mailboxes=boxes))
    with pytest.raises(PlanError):
        plan_sequences(replace(request, mailboxes=boxes[:-1]))


DELAYS = st.builds(
    StepDelay, days=st.integers(0, 3), hours=st.sampled_from([0.0, 0.5, 2.0, 12.0])
).filter(lambda d: d.days or d.hours)
WINDOWS = st.one_of(
    st.none(),
    st.builds(
        SendingWindow,
        days=st.sampled_from([(0, 1, 2, 3, 4), (1, 3), tuple(range(7))]),
        start_hour=st.integers(6, 10),
        end_hour=st.integers(14, 24),
        timezone=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]),
    ),
)


ZONES = st.sampled_from([None, "Asia/Tokyo", "America/Los_Angeles", "Pacific/Kiritimati"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    recipients=st.integers(1, 120),
    limits=st.lists(st.integers(1, 30), min_size=1, max_size=3),
    follow_ups=st.lists(DELAYS, max_size=3),
    window=WINDOWS,
    start_hour=st.integers(0, 23),
    days=st.integers(1, 21),
    zones=st.lists(ZONES, max_size=4),
)
def test_any_plan_keeps_every_rule_or_is_refused(
    recipients: int,
    limits: list[int],
    follow_ups: list[StepDelay],
    window: SendingWindow | None,
    start_hour: int,
    days: int,
    zones: list[str | None],
) -> None:
    start = MONDAY + timedelta(hours=start_hour)
    request = SequenceRequest(
        start=start,
        end=start + timedelta(days=days),
        recipients=recipients,
        follow_ups=tuple(follow_ups),
        mailboxes=tuple(SenderCapacity(f"m{n}", limit) for n, limit in enumerate(limits)),
        window=window,
        seed="property",
        # Recipients in turn in each of the drawn zones (none drawn: all in the window's).
        zones=tuple(zones[n % len(zones)] for n in range(recipients)) if zones else (),
    )
    fit = recipients
    try:
        _assert_sound(request)
    except PlanError as refused:
        fit = refused.fit
    assert fit <= recipients


def test_each_recipient_gets_the_window_in_their_own_time_zone() -> None:
    london = OFFICE.model_copy(update={"timezone": "Europe/London"})
    zones = ("Asia/Tokyo", "America/New_York", None) * 4
    request = _request(
        recipients=len(zones),
        zones=zones,
        window=london,
        mailboxes=(SenderCapacity("a", 5),),
        follow_ups=(StepDelay(days=1),),
    )
    _assert_sound(request)  # each time inside 9-17 on a weekday where its recipient is
    plan = plan_sequences(request)
    tokyo = [p for p in plan.recipients if p.zone == "Asia/Tokyo"]
    assert len(tokyo) == 4
    for planned in tokyo:
        local = planned.times[0].astimezone(ZoneInfo("Asia/Tokyo"))
        assert 9 <= local.hour < 17 and local.weekday() < 5
        # 9-17 in Tokyo is before the London office opens.
        assert planned.times[0].astimezone(ZoneInfo("Europe/London")).hour < 9
    # The mailbox's 5 a day hold on London days, whoever the emails go to.
    per_day = Counter(day_of(t, london) for p in plan.recipients for t in p.times)
    assert max(per_day.values()) <= 5
