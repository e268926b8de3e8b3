"""Charts drawn on the server as SVG: no script, nothing loaded from the network.

The campaign chart has a time axis over the campaign's window so far, with round ticks in
the reader's time zone, and buckets that fit it (hours over up to three days, days
beyond): bars for what people did (opens and clicks by people, replies), and bounces and
complaints in a panel of their own below. A table with the same numbers follows it for
screen readers (and anyone who wants the figures)."""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from html import escape
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

HOURLY_UP_TO = timedelta(days=3)
MAX_TICKS = 8


class Series(NamedTuple):
    """What one colour counts: its name, colour, and which events (type, by a person
    only)."""

    name: str
    colour: str
    type: str
    people_only: bool = False


PEOPLE = (
    Series("Opened by people", "#2f5bea", "open", people_only=True),
    Series("Clicked by people", "#0e9384", "click", people_only=True),
    Series("Replied", "#b54708", "reply"),
)
PROBLEMS = (
    Series("Bounced", "#b42318", "bounce"),
    Series("Complaints", "#6c2bd9", "complaint"),
)


def _buckets(start: datetime, end: datetime, zone: ZoneInfo) -> tuple[list[datetime], str]:
    """The bucket starts from `start` to `end` in the reader's zone, and their unit: whole
    hours (stepped in UTC, so a daylight-saving change neither repeats nor skips one) or
    whole local days (stepped on the calendar, so each starts at local midnight)."""
    if end - start <= HOURLY_UP_TO:
        moment = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        starts = []
        while moment <= end:
            starts.append(moment.astimezone(zone))
            moment += timedelta(hours=1)
        return starts, "hour"
    day = start.astimezone(zone).date()
    starts = []
    while (midnight := datetime.combine(day, time(), zone)) <= end:
        starts.append(midnight)
        day += timedelta(days=1)
    return starts, "day"


def _bucket_of(moment: datetime, starts: list[datetime]) -> int | None:
    """The index of the bucket `moment` falls in (None before the first)."""
    index = bisect_right(starts, moment) - 1
    return index if index >= 0 else None


def _label(moment: datetime, daily: bool, previous: datetime | None) -> str:
    if daily:
        return moment.strftime("%b %d")
    if previous is None or previous.date() != moment.date():
        return moment.strftime("%b %d %H:%M")
    return moment.strftime("%H:%M")


# Tick spacings to choose from, the smallest that keeps to MAX_TICKS.
_TICK_STEPS = tuple(
    timedelta(minutes=minutes)
    for minutes in (5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 4320, 10080)
)


def _ticks(first: datetime, last: datetime, zone: ZoneInfo) -> list[datetime]:
    """Round moments in the reader's zone from `first` to `last`, at most MAX_TICKS."""
    span = last - first
    step = next((s for s in _TICK_STEPS if span / s <= MAX_TICKS - 1), _TICK_STEPS[-1])
    local = first.astimezone(zone)
    if step >= timedelta(days=1):
        moment = datetime.combine(local.date(), time(), zone)
    else:
        midnight = datetime.combine(local.date(), time(), zone)
        steps_in = (local - midnight) // step
        moment = midnight + steps_in * step
    ticks = []
    while moment <= last:
        if moment >= first:
            ticks.append(moment)
        moment = (
            moment + step
            if step < timedelta(days=1)
            else datetime.combine(moment.date() + timedelta(days=step.days), time(), zone)
        )
    return ticks


def events_chart(
    series: list[dict[str, Any]], *, start: datetime, end: datetime, zone: ZoneInfo
) -> str:
    """The chart of a campaign's events (rows of the event series: hour, type, machine,
    count) from `start` to `end`; '' when nothing happened yet."""
    if not series:
        return ""
    start = min(start, min(row["hour"] for row in series))
    end = max(end, max(row["hour"] for row in series))
    starts, unit = _buckets(start, end, zone)
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(starts))
    for row in series:
        index = _bucket_of(row["hour"].astimezone(zone), starts)
        if index is None:
            continue
        for line in (*PEOPLE, *PROBLEMS):
            if row["type"] == line.type and not (line.people_only and row["machine"]):
                counts[line.name][index] += row["count"]
    if not any(sum(counts[line.name]) for line in (*PEOPLE, *PROBLEMS)):
        return ""
    bucket = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    first, last = starts[0], starts[-1] + bucket
    width, left, right = 760, 44, 30
    plot = width - left - right

    def x_of(moment: datetime) -> float:
        return left + (moment - first) / (last - first) * plot

    panels = [
        (PEOPLE, 150, f"What people did, per {unit}"),
        (PROBLEMS, 70, "Bounces and complaints"),
    ]
    parts: list[str] = []
    y = 0
    for lines, height, title in panels:
        top = max(max(counts[line.name]) for line in lines) or 1
        base = y + 22 + height
        parts.append(f'<text x="{left}" y="{y + 14}" class="chart-title">{escape(title)}</text>')
        parts.append(
            f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" class="axis"/>'
            f'<text x="{left - 6}" y="{base}" class="tick" text-anchor="end">0</text>'
            f'<text x="{left - 6}" y="{base - height + 4}" class="tick" '
            f'text-anchor="end">{top}</text>'
        )
        for index, moment in enumerate(starts):
            slot = x_of(moment + bucket) - x_of(moment)
            bar = max(slot * 0.8 / len(lines), 1.0)
            for position, line in enumerate(lines):
                value = counts[line.name][index]
                if not value:
                    continue
                h = value / top * height
                x = x_of(moment) + slot * 0.1 + position * bar
                label = _label(moment, unit == "day", None)
                parts.append(
                    f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                    f'fill="{line.colour}"><title>{escape(line.name)}: {value} '
                    f"({escape(label)})</title></rect>"
                )
        y = base + 8
    # The time axis, under both panels, in the reader's zone.
    previous = None
    for moment in _ticks(first, last, zone):
        x = x_of(moment)
        label = _label(moment, unit == "day" and moment.hour == 0, previous)
        previous = moment
        parts.append(
            f'<line x1="{x:.1f}" y1="{y - 8}" x2="{x:.1f}" y2="{y - 3}" class="axis"/>'
            f'<text x="{x:.1f}" y="{y + 10}" class="tick" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    y += 26
    legend_x = left
    for line in (*PEOPLE, *PROBLEMS):
        parts.append(
            f'<rect x="{legend_x}" y="{y - 9}" width="10" height="10" fill="{line.colour}"/>'
            f'<text x="{legend_x + 14}" y="{y}" class="legend">{escape(line.name)}</text>'
        )
        legend_x += 16 + 7 * len(line.name) + 18
    svg = (
        f'<svg class="chart" role="img" viewBox="0 0 {width} {y + 8}" width="100%" '
        f'aria-labelledby="chart-caption">{"".join(parts)}</svg>'
    )
    return svg + _table(starts, unit, counts)


def _table(starts: list[datetime], unit: str, counts: dict[str, list[int]]) -> str:
    lines = (*PEOPLE, *PROBLEMS)
    head = "".join(f"<th>{escape(line.name)}</th>" for line in lines)
    rows = []
    previous = None
    for index, moment in enumerate(starts):
        values = [counts[line.name][index] for line in lines]
        label = _label(moment, unit == "day", previous)
        previous = moment
        if any(values):
            cells = "".join(f"<td>{value}</td>" for value in values)
            rows.append(f"<tr><th>{escape(label)}</th>{cells}</tr>")
    return (
        '<details class="chart-data"><summary id="chart-caption">The numbers, per '
        f"{unit} (periods with events)</summary><table><thead><tr><th>{unit.title()}</th>"
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></details>"
    )


class DayFigures(NamedTuple):
    """One day of a mailbox's history as its health chart draws it."""

    day: str
    campaign_sent: int
    warmup_sent: int
    placement: float | None
    """Warm-up emails found in the inbox among those found, in percent (None: none found)."""
    daily_limit: int | None


HEALTH_SENT = (("Campaign emails", "#2f5bea"), ("Warm-up emails", "#0e9384"))
PLACEMENT_COLOUR = "#b54708"


def health_chart(days: list[DayFigures]) -> str:
    """A mailbox's last days: what it sent each day (campaigns and warm-up, against its
    daily limit), and the inbox placement of its warm-up emails; '' before any day. A table
    with the same numbers follows for screen readers."""
    if not days:
        return ""
    width, left, right, slot_count = 760, 44, 30, len(days)
    plot = width - left - right
    slot = plot / slot_count
    top = max(max(d.campaign_sent + d.warmup_sent, d.daily_limit or 0) for d in days) or 1
    parts: list[str] = []
    height, base = 130, 22 + 130
    parts.append(
        f'<text x="{left}" y="14" class="chart-title">Emails sent per day (line: the daily '
        "limit)</text>"
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" class="axis"/>'
        f'<text x="{left - 6}" y="{base}" class="tick" text-anchor="end">0</text>'
        f'<text x="{left - 6}" y="{base - height + 4}" class="tick" text-anchor="end">{top}</text>'
    )
    for index, day in enumerate(days):
        x = left + index * slot + slot * 0.15
        bar = slot * 0.7
        y = float(base)
        for (name, colour), value in zip(
            HEALTH_SENT, (day.campaign_sent, day.warmup_sent), strict=True
        ):
            if value:
                h = value / top * height
                y -= h
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                    f'fill="{colour}"><title>{escape(name)}: {value} ({day.day})</title></rect>'
                )
        if day.daily_limit:
            ly = base - day.daily_limit / top * height
            parts.append(
                f'<line x1="{x - slot * 0.1:.1f}" y1="{ly:.1f}" x2="{x + bar + slot * 0.1:.1f}" '
                f'y2="{ly:.1f}" stroke="#344054" stroke-width="2"><title>Daily limit: '
                f"{day.daily_limit} ({day.day})</title></line>"
            )
    panel_top = base + 16
    p_height = 70
    p_base = panel_top + 22 + p_height
    parts.append(
        f'<text x="{left}" y="{panel_top + 14}" class="chart-title">Warm-up emails that '
        "reached the inbox, %</text>"
        f'<line x1="{left}" y1="{p_base}" x2="{width - right}" y2="{p_base}" class="axis"/>'
        f'<text x="{left - 6}" y="{p_base}" class="tick" text-anchor="end">0</text>'
        f'<text x="{left - 6}" y="{p_base - p_height + 4}" class="tick" '
        'text-anchor="end">100</text>'
    )
    for index, day in enumerate(days):
        if day.placement is None:
            continue
        x = left + index * slot + slot * 0.15
        h = day.placement / 100 * p_height
        parts.append(
            f'<rect x="{x:.1f}" y="{p_base - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
            f'fill="{PLACEMENT_COLOUR}" data-placement="{day.day}"><title>Inbox placement: '
            f"{day.placement:g} % ({day.day})</title></rect>"
        )
    y = p_base + 8
    step = max(slot_count // MAX_TICKS, 1)
    for index in range(0, slot_count, step):
        x = left + (index + 0.5) * slot
        parts.append(
            f'<text x="{x:.1f}" y="{y + 10}" class="tick" text-anchor="middle">'
            f"{escape(days[index].day[5:])}</text>"
        )
    y += 26
    legend_x = left
    for name, colour in (*HEALTH_SENT, ("Inbox placement", PLACEMENT_COLOUR)):
        parts.append(
            f'<rect x="{legend_x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="{y}" class="legend">{escape(name)}</text>'
        )
        legend_x += 16 + 7 * len(name) + 18
    svg = (
        f'<svg class="chart" id="health-chart" role="img" viewBox="0 0 {width} {y + 8}" '
        f'width="100%" aria-labelledby="health-caption">{"".join(parts)}</svg>'
    )
    rows = "".join(
        f"<tr><th>{d.day}</th><td>{d.campaign_sent}</td><td>{d.warmup_sent}</td>"
        f"<td>{'' if d.daily_limit is None else d.daily_limit}</td>"
        f"<td>{'' if d.placement is None else f'{d.placement:g} %'}</td></tr>"
        for d in days
    )
    return svg + (
        '<details class="chart-data"><summary id="health-caption">The numbers, per day'
        "</summary><table><thead><tr><th>Day</th><th>Campaign emails</th><th>Warm-up "
        "emails</th><th>Daily limit</th><th>Inbox placement</th></tr></thead><tbody>"
        f"{rows}</tbody></table></details>"
    )
