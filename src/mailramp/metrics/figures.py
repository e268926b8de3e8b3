"""The figures a person reads about a campaign, defined once: the campaigns list, the
campaign page, the CLI and the demo's summary all show these (the API returns the counters
and rates they come from).

People first: "Opened" and "Clicked" are what people did; what privacy proxies and link
scanners did is beside them (`machines`), never mixed in. A rate that cannot be measured
has no value (`rate` None) and says why (`unmeasured`): opens of a plain-text email, or of
a campaign with open tracking off.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailramp.metrics.models import CampaignMetrics, percent


@dataclass(frozen=True)
class Figure:
    """One number: a count of recipients, its rate in percent of `of` (None for a bare
    count, or when it cannot be measured: then `unmeasured` says why), and what machines
    did beside it (opens and clicks only)."""

    key: str
    label: str
    count: int
    rate: float | None = None
    of: str | None = None
    unmeasured: str | None = None
    machines: int | None = None

    @property
    def shown_rate(self) -> str:
        """The rate as a page or terminal shows it: "35.92%", or "—" when unmeasured."""
        if self.unmeasured is not None:
            return "—"
        return "" if self.rate is None else f"{self.rate}%"


def figures(
    metrics: CampaignMetrics, *, opens_untracked: str | None, clicks_untracked: str | None
) -> list[Figure]:
    """A campaign's figures, in the order of its funnel."""
    m = metrics
    opened = (m.total_human_opened, m.total_opened, m.human_open_rate)
    clicked = (m.total_human_clicks, m.total_clicks, m.human_click_rate)
    return [
        Figure("sent", "Sent", m.total_sent),
        Figure("delivered", "Delivered", m.total_delivered),
        _by_people("opened", *opened, why=opens_untracked),
        _by_people("clicked", *clicked, why=clicks_untracked),
        Figure("replied", "Replied", m.total_replied, m.reply_rate, "delivered"),
        Figure("auto_replied", "Automatic replies", m.total_auto_replied),
        Figure("bounced", "Bounced", m.total_bounced, m.bounce_rate, "sent"),
        Figure("complained", "Complaints", m.total_complained, m.complaint_rate, "delivered"),
        Figure(
            "unsubscribed",
            "Unsubscribed",
            m.total_unsubscribed,
            percent(m.total_unsubscribed, m.total_delivered),
            "delivered",
        ),
    ]


def _by_people(key: str, people: int, anyone: int, rate: float, *, why: str | None) -> Figure:
    """What people did (opened, clicked), what machines did beside it, and no rate where
    it cannot be measured."""
    rated = None if why else rate
    return Figure(key, key.title(), people, rated, "delivered", why, anyone - people)


def by_key(found: list[Figure]) -> dict[str, Figure]:
    """The figures by key."""
    return {figure.key: figure for figure in found}
