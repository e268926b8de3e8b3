"""The `campaign_matrix` document and how its rates follow from its counters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from mailramp.kit.types import CampaignIdStr, ObjectIdStr, Record, UTCDateTime

COUNTERS = (
    "total_sent",
    "total_delivered",
    "total_opened",
    "total_clicks",
    "total_bounced",
    "total_replied",
    "total_unsubscribed",
    # Additions (docs/tracking.md): engagement without privacy proxies and link scanners,
    # and automatic replies counted apart from replies.
    "total_human_opened",
    "total_human_clicks",
    "total_auto_replied",
    # Recipients who reported a message as spam (feedback-loop complaints).
    "total_complained",
)
RATES = (
    "open_rate",
    "click_rate",
    "bounce_rate",
    "reply_rate",
    "human_open_rate",
    "human_click_rate",
    "complaint_rate",
)


def check_increments(deltas: Mapping[str, int]) -> None:
    """ValueError unless every name is a counter that increments (`total_delivered` is
    derived from sent and bounced, never incremented)."""
    unknown = set(deltas) - set(COUNTERS) | ({"total_delivered"} & set(deltas))
    if unknown:
        raise ValueError(f"not incrementable counters: {sorted(unknown)}")


class CampaignMetrics(Record):
    """Counters of unique recipients per event, and rates in percent with 2 decimals."""

    id: ObjectIdStr = Field(alias="_id")
    campaign_id: CampaignIdStr
    user_id: ObjectIdStr
    mailbox_id: ObjectIdStr
    total_sent: int = 0
    total_delivered: int = 0
    total_opened: int = 0
    total_clicks: int = 0
    total_bounced: int = 0
    total_replied: int = 0
    total_unsubscribed: int = 0
    open_rate: float = 0.0
    click_rate: float = 0.0
    bounce_rate: float = 0.0
    reply_rate: float = 0.0
    total_human_opened: int = 0
    total_human_clicks: int = 0
    total_auto_replied: int = 0
    human_open_rate: float = 0.0
    human_click_rate: float = 0.0
    total_complained: int = 0
    complaint_rate: float = 0.0
    created_at: UTCDateTime
    last_updated: UTCDateTime


ByVariant = dict[int, dict[str, int]]
"""Counters (name → count) per variant of a campaign's email (0 = A)."""


def percent(part: int, whole: int) -> float:
    """`part` as a percentage of `whole`, 2 decimals; 0 when `whole` is 0."""
    return round(100.0 * part / whole, 2) if whole > 0 else 0.0


def derived_fields(counters: Mapping[str, int]) -> dict[str, float | int]:
    """`total_delivered` and the rates: the four of DESIGN.md §5 and the additions of
    docs/metrics.md."""
    delivered = max(counters["total_sent"] - counters["total_bounced"], 0)
    return {
        "total_delivered": delivered,
        "open_rate": percent(counters["total_opened"], delivered),
        "click_rate": percent(counters["total_clicks"], delivered),
        "reply_rate": percent(counters["total_replied"], delivered),
        "bounce_rate": percent(counters["total_bounced"], counters["total_sent"]),
        "human_open_rate": percent(counters["total_human_opened"], delivered),
        "human_click_rate": percent(counters["total_human_clicks"], delivered),
        "complaint_rate": percent(counters["total_complained"], delivered),
    }


def tallied(counters: Mapping[str, int]) -> CampaignMetrics:
    """Counters, and the rates they give, as a metrics document stored nowhere: the figures
    of a part of a campaign (one variant's recipients)."""
    full: dict[str, Any] = {name: int(counters.get(name, 0)) for name in COUNTERS}
    values: dict[str, Any] = {**full, **derived_fields(full)}
    return CampaignMetrics.model_construct(**values)
