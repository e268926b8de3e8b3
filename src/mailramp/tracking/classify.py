"""Telling people from machines: mail-privacy proxies open every image, link scanners
follow every link. Such events are kept, flagged with the rule that matched, and counted
apart, so the human figures show people. The rules, in order (docs/tracking.md):

Opens
- `google_image_proxy`: the user agent names GoogleImageProxy (Gmail fetches every image
  through it; an open through it is real but says nothing of the time or the device).
- `apple_mpp`: Apple Mail Privacy Protection — a request from Apple's 17.0.0.0/8 network,
  or with the bare user agent `Mozilla/5.0` its proxies send. These fire for every message
  delivered to Apple Mail, read or not.
- `known_proxy`: Yahoo's and other image proxies named in the user agent.
- `scanner`: a known security scanner or HTTP library user agent.

Clicks
- `head_request`: a HEAD request (a scanner checking the link, never a person's click).
- `scanner`: a known security scanner, preview bot or HTTP library user agent.
- `too_fast`: within 10 seconds of the send — sooner than a person can open and click.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
SCANNER_CLICK_WINDOW = timedelta(seconds=10)

_PROXIES = (
    ("googleimageproxy", "google_image_proxy"),
    ("yahoomailproxy", "known_proxy"),
    ("ymailproxy", "known_proxy"),
)
_SCANNERS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "safelinks",
    "symantec",
    "trendmicro",
    "fortinet",
    "sophos",
    "cisco",
    "ironport",
    "forcepoint",
    "bingpreview",
    "googlebot",
    "bot/",
    "bot;",
    "crawler",
    "spider",
    "scanner",
    "headlesschrome",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "curl/",
    "wget/",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww-perl",
    "apache-httpclient",
)


def _is_apple(ip: str | None, user_agent: str) -> bool:
    if user_agent.strip() == "Mozilla/5.0":
        return True
    if ip is None:
        return False
    try:
        return ipaddress.ip_address(ip) in APPLE_NETWORK
    except ValueError:
        return False


def _scanner(agent: str) -> bool:
    return not agent or any(marker in agent for marker in _SCANNERS)


def classify_open(*, user_agent: str | None, ip: str | None) -> str | None:
    """The machine rule an open matches, or None for a person."""
    agent = (user_agent or "").lower()
    for marker, reason in _PROXIES:
        if marker in agent:
            return reason
    if _is_apple(ip, user_agent or ""):
        return "apple_mpp"
    if _scanner(agent):
        return "scanner"
    return None


def classify_click(
    *, user_agent: str | None, ip: str | None, method: str, sent_at: datetime | None, now: datetime
) -> str | None:
    """The machine rule a click matches, or None for a person."""
    if method.upper() == "HEAD":
        return "head_request"
    if _scanner((user_agent or "").lower()):
        return "scanner"
    if sent_at is not None and now - sent_at < SCANNER_CLICK_WINDOW:
        return "too_fast"
    return None
