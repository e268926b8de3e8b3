"""The rules that tell machines from people (docs/tracking.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailramp.tracking.classify import classify_click, classify_open

NOW = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
SAFARI = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)


@pytest.mark.parametrize(
    ("agent", "ip", "expected"),
    [
        (SAFARI, "203.0.113.9", None),
        (GMAIL_PROXY, "66.249.84.1", "google_image_proxy"),
        ("Mozilla/5.0", "198.51.100.4", "apple_mpp"),
        (SAFARI, "17.58.63.12", "apple_mpp"),
        (
            "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
            None,
            "known_proxy",
        ),
        ("python-requests/2.32", "203.0.113.9", "scanner"),
        ("", "203.0.113.9", "scanner"),
        (None, None, "scanner"),
        (SAFARI, "not-an-ip", None),
    ],
)
def test_opens(agent: str | None, ip: str | None, expected: str | None) -> None:
    assert classify_open(user_agent=agent, ip=ip) == expected


@pytest.mark.parametrize(
    ("agent", "method", "sent_seconds_ago", "expected"),
    [
        (SAFARI, "GET", 600, None),
        (SAFARI, "HEAD", 600, "head_request"),
        ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "GET", 600, "scanner"),
        ("Mozilla/5.0 (compatible; bingbot/2.0; BingPreview)", "GET", 600, "scanner"),
        (SAFARI, "GET", 3, "too_fast"),
        (SAFARI, "GET", 10, None),
    ],
)
def test_clicks(agent: str, method: str, sent_seconds_ago: int, expected: str | None) -> None:
    sent = NOW - timedelta(seconds=sent_seconds_ago)
    assert (
        classify_click(user_agent=agent, ip="203.0.113.9", method=method, sent_at=sent, now=NOW)
        == expected
    )
