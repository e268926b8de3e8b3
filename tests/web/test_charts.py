"""The campaign chart: a time axis over the window so far in the reader's zone, buckets
that fit it, what people did apart from machines, bounces apart, and the same numbers as a
table."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from mailramp.web.charts import events_chart
from tests.support.clock import MONDAY_MORNING

NEW_YORK = ZoneInfo("America/New_York")


def _row(hours: float, kind: str, count: int, *, machine: bool = False) -> dict[str, object]:
    hour = (MONDAY_MORNING + timedelta(hours=hours)).replace(minute=0)
    return {"hour": hour, "type": kind, "machine": machine, "count": count}


def _ticks(svg: str) -> list[str]:
    return re.findall(r'class="tick" text-anchor="middle">([^<]+)<', svg)


def _table(svg: str) -> list[list[str]]:
    body = svg.split("<tbody>", 1)[1]
    return [re.findall(r"<t[hd]>([^<]*)</t[hd]>", row) for row in body.split("</tr>")[:-1]]


def test_a_few_hours_read_by_the_hour_in_the_readers_zone() -> None:
    series = [
        _row(0, "open", 3),
        _row(0, "open", 5, machine=True),  # a privacy proxy: not a person
        _row(1, "click", 2),
        _row(2, "reply", 1),
        _row(2, "bounce", 1),
    ]
    chart = events_chart(
        series, start=MONDAY_MORNING, end=MONDAY_MORNING + timedelta(hours=5), zone=NEW_YORK
    )
    # 09:00 UTC on 2027-03-01 is 04:00 in New York: the first tick names the day.
    assert _ticks(chart) == [
        "Mar 01 04:00", "05:00", "06:00", "07:00", "08:00", "09:00", "10:00"
    ]  # fmt: skip
    assert "What people did, per hour" in chart and "Bounces and complaints" in chart
    assert _table(chart) == [
        ["Mar 01 04:00", "3", "0", "0", "0", "0"],
        ["05:00", "0", "2", "0", "0", "0"],
        ["06:00", "0", "0", "1", "1", "0"],
    ]


def test_weeks_read_by_the_local_day_and_ticks_stay_few() -> None:
    series = [_row(24 * day, "open", day + 1) for day in range(20)]
    chart = events_chart(
        series, start=MONDAY_MORNING, end=MONDAY_MORNING + timedelta(days=20), zone=NEW_YORK
    )
    ticks = _ticks(chart)
    assert 5 <= len(ticks) <= 8 and ticks[0] == "Mar 01"
    assert "per day" in chart
    # Each local day holds its own opens, across the change to summer time on March 14.
    assert [row[1] for row in _table(chart)] == [str(day + 1) for day in range(20)]


def test_nothing_yet_draws_nothing() -> None:
    assert events_chart([], start=MONDAY_MORNING, end=MONDAY_MORNING, zone=NEW_YORK) == ""
    machines_only = [_row(0, "open", 4, machine=True)]
    end = MONDAY_MORNING + timedelta(hours=1)
    assert events_chart(machines_only, start=MONDAY_MORNING, end=end, zone=NEW_YORK) == ""
