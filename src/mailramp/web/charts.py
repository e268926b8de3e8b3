"""Charts drawn on the server as SVG: no script, nothing loaded from the network."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from html import escape
from typing import Any

COLOURS = {
    "open": "#2f5bea",
    "click": "#0e9384",
    "reply": "#b54708",
    "bounce": "#b42318",
    "unsubscribe": "#6c737f",
    "auto_reply": "#c4a000",
}


def events_chart(series: list[dict[str, Any]], *, width: int = 720, height: int = 180) -> str:
    """Human events per hour as stacked bars, one colour per event type."""
    buckets: dict[datetime, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in series:
        if not row["machine"]:
            buckets[row["hour"]][row["type"]] += row["count"]
    if not buckets:
        return ""
    hours = sorted(buckets)
    top = max(sum(counts.values()) for counts in buckets.values())
    slot = (width - 40) / max(len(hours), 1)
    bar = max(slot * 0.7, 2)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height + 30}" '
        f'width="100%" aria-label="Human events per hour">'
    ]
    for index, hour in enumerate(hours):
        y: float = height
        x = 30 + index * slot
        for kind, count in sorted(buckets[hour].items()):
            h = count / top * (height - 10)
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS.get(kind, "#999")}"><title>{escape(kind)}: {count} at '
                f"{hour:%Y-%m-%d %H:00} UTC</title></rect>"
            )
    parts.append(f'<line x1="30" y1="{height}" x2="{width}" y2="{height}" stroke="#c9ced8"/>')
    parts.append(f'<text x="0" y="14" font-size="11" fill="#5b6475">{top}</text>')
    legend_x = 30
    for kind in sorted({k for counts in buckets.values() for k in counts}):
        parts.append(
            f'<rect x="{legend_x}" y="{height + 14}" width="10" height="10" '
            f'fill="{COLOURS.get(kind, "#999")}"/>'
            f'<text x="{legend_x + 14}" y="{height + 23}" font-size="11">{escape(kind)}</text>'
        )
        legend_x += 90
    parts.append("</svg>")
    return "".join(parts)
