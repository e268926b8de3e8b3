"""Telling people from machines: mail-privacy proxies open every image, link scanners
follow every link. Such events are kept, flagged with the rule that matched, and counted
apart, so the human figures show people (docs/tracking.md lists the rules with why, and
the error each is expected to make).

A request is judged twice:

1. **At once**, from the request alone. Opens: `google_image_proxy`, `apple_mpp`,
   `known_proxy` (an image proxy, by its user agent or its network), `known_network` (a
   security gateway's published network), `scanner` (a scanner's or an HTTP library's
   user agent, or none). Clicks and the unsubscribe page: `head_request`, `scanner`,
   `known_network`, `too_fast` (sooner after the send than a person can read). The trap
   link: `trap_link`. A request no rule matches is recorded as `settling`.
2. **When it settles** (`MachineRules.settle` after it was made, by which time every
   request that could share its burst has arrived): the email's requests are grouped in
   bursts — each within `MachineRules.burst` of the one before — and a settling request
   is a machine's (`scanner_burst`) when its burst followed two or more distinct links
   (the unsubscribe link counts as one), held the trap link, or held a request from the
   same address that a link-following machine made (a HEAD, a scanner's user agent, a
   gateway's network). Otherwise it was a person.

A person's click also counts as their open (tracking/events.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mailramp.tracking.models import SETTLING, EmailEvent, EventType
from mailramp.tracking.networks import KnownNetworks, NetworkKind, shipped

BURST = timedelta(seconds=5)
SETTLE = timedelta(seconds=30)
TOO_FAST = timedelta(seconds=5)
SCANNER_BURST = "scanner_burst"
TRAP_LINK = "trap_link"
KNOWN_NETWORK = "known_network"

FETCHES = frozenset({EventType.OPEN, EventType.CLICK, EventType.UNSUBSCRIBE_PAGE, EventType.TRAP})
"""The requests a message's own URLs receive: what bursts are made of."""
LINK_CHECKS = frozenset({"head_request", "scanner", KNOWN_NETWORK})
"""Rules only a machine that follows links matches: its other requests in the same burst,
from the same address, are its own."""

_IMAGE_PROXIES = {"apple": "apple_mpp", "google": "google_image_proxy"}
_PROXY_AGENTS = (
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


@dataclass(frozen=True)
class MachineRules:
    """The settable parts of the rules: the burst and settling windows, how soon after the
    send a click is too fast for a person, and the known networks."""

    burst: timedelta = BURST
    settle: timedelta = SETTLE
    too_fast: timedelta = TOO_FAST
    networks: KnownNetworks = field(default_factory=shipped)

    def __post_init__(self) -> None:
        if not timedelta(0) < self.burst < self.settle:
            raise ValueError(f"the burst window ({self.burst}) must be shorter than settling")


@dataclass(frozen=True)
class Visitor:
    """What a tracking request says about who made it (all of it untrusted but the
    address, which is the socket's or a trusted proxy's)."""

    user_agent: str | None
    ip: str | None
    method: str = "GET"


@dataclass(frozen=True)
class Verdict:
    """How one request is classified: the rule that made it a machine's (None: a person's,
    `SETTLING`: not decided yet) and what the rule found (`details["machine"]`)."""

    reason: str | None
    found: dict[str, Any] = field(default_factory=dict)


PERSON = Verdict(None)
UNDECIDED = Verdict(SETTLING)


def _scanner_agent(agent: str) -> bool:
    return not agent or any(marker in agent for marker in _SCANNERS)


def _network(rules: MachineRules, request: Visitor, *, opens: bool) -> Verdict | None:
    network = rules.networks.find(request.ip)
    if network is None:
        return None
    found = {"network": network.operator}
    if network.kind is NetworkKind.IMAGE_PROXY:
        if not opens:
            return None  # an image proxy's network fetches images; people click from it too
        return Verdict(_IMAGE_PROXIES.get(network.operator, "known_proxy"), found)
    return Verdict(KNOWN_NETWORK, found)


def judge_open(rules: MachineRules, request: Visitor) -> Verdict:
    """An open, judged from its request alone."""
    if request.method.upper() == "HEAD":  # mail clients GET images; checkers look first
        return Verdict("head_request")
    agent = (request.user_agent or "").lower()
    for marker, reason in _PROXY_AGENTS:
        if marker in agent:
            return Verdict(reason)
    if (request.user_agent or "").strip() == "Mozilla/5.0":  # Apple's proxies send only this
        return Verdict("apple_mpp")
    by_network = _network(rules, request, opens=True)
    if by_network is not None:
        return by_network
    if _scanner_agent(agent):
        return Verdict("scanner")
    return UNDECIDED


def judge_link(
    rules: MachineRules, request: Visitor, *, sent_at: datetime | None, now: datetime
) -> Verdict:
    """A click or a fetch of the unsubscribe page, judged from its request alone."""
    if request.method.upper() == "HEAD":
        return Verdict("head_request")
    if _scanner_agent((request.user_agent or "").lower()):
        return Verdict("scanner")
    by_network = _network(rules, request, opens=False)
    if by_network is not None:
        return by_network
    if sent_at is not None and now - sent_at < rules.too_fast:
        return Verdict("too_fast", {"seconds": round((now - sent_at).total_seconds(), 1)})
    return UNDECIDED


def _target(event: EmailEvent) -> str:
    """Which of the message's URLs a request fetched."""
    if event.type is EventType.CLICK:
        return f"link {event.details.get('link_index', 0)}"
    return event.type.value


@dataclass(frozen=True)
class Burst:
    """Requests for one email, each within the burst window of the one before."""

    events: tuple[EmailEvent, ...]

    @property
    def seconds(self) -> float:
        return (self.events[-1].occurred_at - self.events[0].occurred_at).total_seconds()

    @property
    def urls(self) -> int:
        """How many distinct URLs of the message it fetched (the pixel included)."""
        return len({_target(event) for event in self.events})

    @property
    def followed(self) -> int:
        """How many distinct links it followed (the unsubscribe and trap links included)."""
        return len({_target(event) for event in self.events if event.type is not EventType.OPEN})

    def found(self, because: str) -> dict[str, Any]:
        return {"urls": self.urls, "seconds": round(self.seconds, 1), "because": because}

    def verdict(self, event: EmailEvent) -> Verdict:
        """A settling request of this burst: a machine's, or a person's."""
        if self.followed >= 2:
            return Verdict(SCANNER_BURST, self.found("links"))
        if any(other.type is EventType.TRAP for other in self.events):
            return Verdict(SCANNER_BURST, self.found(TRAP_LINK))
        address = event.details.get("ip_hash")
        for other in self.events:
            if (
                other.machine_reason in LINK_CHECKS
                and other.details.get("ip_hash") == address
                and other is not event
            ):
                return Verdict(SCANNER_BURST, self.found(str(other.machine_reason)))
        return PERSON


def bursts(events: Iterable[EmailEvent], window: timedelta) -> list[Burst]:
    """An email's requests (`FETCHES`), in bursts: each request within `window` of the one
    before it joins its burst."""
    fetches = sorted(
        (event for event in events if event.type in FETCHES),
        key=lambda event: (event.occurred_at, event.id),
    )
    groups: list[list[EmailEvent]] = []
    for event in fetches:
        if groups and event.occurred_at - groups[-1][-1].occurred_at <= window:
            groups[-1].append(event)
        else:
            groups.append([event])
    return [Burst(tuple(group)) for group in groups]


def settle(
    events: Sequence[EmailEvent], rules: MachineRules, *, now: datetime
) -> list[tuple[EmailEvent, Verdict]]:
    """The verdicts of an email's settling requests made at least `rules.settle` before
    `now` (the others wait), from all its requests so far."""
    due = now - rules.settle
    return [
        (event, burst.verdict(event))
        for burst in bursts(events, rules.burst)
        for event in burst.events
        if event.settling and event.occurred_at <= due
    ]


_SAID = {
    "google_image_proxy": "Gmail's image proxy",
    "apple_mpp": "Apple Mail Privacy Protection",
    "known_proxy": "a mail image proxy",
    "scanner": "scanner: its user agent is a scanner's or a program's",
    "head_request": "scanner: a HEAD request",
    TRAP_LINK: "scanner: it fetched the trap link",
    SETTLING: "deciding: person or machine",
}
_BECAUSE = {
    "head_request": "with a HEAD request from the same address",
    "scanner": "with a scanner's request from the same address",
    KNOWN_NETWORK: "with a request from a security gateway's network",
    TRAP_LINK: "with the trap link",
}


def explain(event: EmailEvent) -> str | None:
    """Why an event is counted as a machine's, in words ("scanner: burst of 4 links in
    0.8 s"); None for a person's."""
    reason = event.machine_reason
    if not event.machine or reason is None:
        return None
    found = event.details.get("machine")
    found = found if isinstance(found, dict) else {}
    if reason == SCANNER_BURST:
        urls, seconds = found.get("urls", "?"), found.get("seconds", "?")
        said = f"scanner: burst of {urls} links in {seconds} s"
        because = _BECAUSE.get(str(found.get("because")))
        return f"{said}, {because}" if because else said
    if reason == KNOWN_NETWORK:
        return f"scanner: from {found.get('network', 'a security gateway')}'s network"
    if reason == "too_fast":
        return f"scanner: {found.get('seconds', 'seconds')} s after it was sent"
    said = _SAID.get(reason, reason.replace("_", " "))
    if "network" in found:
        said += f" (its network: {found['network']})"
    return said


_DONE = {
    EventType.OPEN: "opened",
    EventType.CLICK: "clicked",
    EventType.UNSUBSCRIBE_PAGE: "unsubscribe page fetched",
    EventType.TRAP: "trap link fetched",
    EventType.UNSUBSCRIBE: "unsubscribed",
}


def describe(event: EmailEvent) -> str:
    """What an event says on a timeline: "clicked", or "clicked (scanner: burst of 4 links
    in 0.8 s)" when a machine made it."""
    done = _DONE.get(event.type, event.type.value.replace("_", " "))
    why = explain(event)
    return f"{done} ({why})" if why else done
