"""The rules that tell machines from people (docs/tracking.md): each request at once, then
its burst when it settles, and the words the timeline shows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailramp.errors import ConfigurationError
from mailramp.kit.ids import new_object_id
from mailramp.tracking.classify import (
    SCANNER_BURST,
    MachineRules,
    Verdict,
    Visitor,
    bursts,
    explain,
    judge_link,
    judge_open,
    settle,
)
from mailramp.tracking.models import SETTLING, EmailEvent, EventType
from mailramp.tracking.networks import KnownNetworks, NetworkKind, shipped

NOW = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
SAFARI = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
RULES = MachineRules()
MICROSOFT_EOP = "40.107.22.5"  # Exchange Online Protection (networks.toml)
MIMECAST = "205.139.110.7"


@pytest.mark.parametrize(
    ("agent", "ip", "expected"),
    [
        (SAFARI, "203.0.113.9", SETTLING),
        (GMAIL_PROXY, "66.249.84.1", "google_image_proxy"),
        ("Mozilla/5.0", "198.51.100.4", "apple_mpp"),
        (SAFARI, "17.58.63.12", "apple_mpp"),
        (SAFARI, "::ffff:17.58.63.12", "apple_mpp"),
        (
            "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
            None,
            "known_proxy",
        ),
        (CHROME, MICROSOFT_EOP, "known_network"),
        (CHROME, "2a01:111:f403:c201::5", "known_network"),
        ("python-requests/2.32", "203.0.113.9", "scanner"),
        ("", "203.0.113.9", "scanner"),
        (None, None, "scanner"),
        (SAFARI, "not-an-ip", SETTLING),
    ],
)
def test_opens_judged_at_once(agent: str | None, ip: str | None, expected: str) -> None:
    assert judge_open(RULES, Visitor(agent, ip)).reason == expected


@pytest.mark.parametrize(
    ("agent", "ip", "method", "sent_seconds_ago", "expected"),
    [
        (SAFARI, "203.0.113.9", "GET", 600, SETTLING),
        (SAFARI, "203.0.113.9", "HEAD", 600, "head_request"),
        ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "203.0.113.9", "GET", 600, "scanner"),
        ("Mozilla/5.0 (compatible; bingbot/2.0; BingPreview)", None, "GET", 600, "scanner"),
        (CHROME, MIMECAST, "GET", 600, "known_network"),
        # An image proxy's network fetches images; a person may click from it.
        (SAFARI, "17.58.63.12", "GET", 600, SETTLING),
        (SAFARI, "203.0.113.9", "GET", 3, "too_fast"),
        (SAFARI, "203.0.113.9", "GET", 5, SETTLING),
    ],
)
def test_links_judged_at_once(
    agent: str, ip: str | None, method: str, sent_seconds_ago: int, expected: str
) -> None:
    sent = NOW - timedelta(seconds=sent_seconds_ago)
    verdict = judge_link(RULES, Visitor(agent, ip, method), sent_at=sent, now=NOW)
    assert verdict.reason == expected


def test_a_known_network_is_named_in_the_verdict() -> None:
    verdict = judge_link(RULES, Visitor(CHROME, MIMECAST), sent_at=None, now=NOW)
    assert verdict == Verdict("known_network", {"network": "mimecast"})


RECORD = new_object_id()


def fetch(
    kind: EventType,
    seconds: float,
    *,
    link: int = 0,
    reason: str | None = SETTLING,
    ip: str = "a",
) -> EmailEvent:
    """A request of one email, `seconds` after a moment ten minutes before NOW."""
    details: dict[str, Any] = {"ip_hash": ip}
    if kind is EventType.CLICK:
        details["link_index"] = link
    return EmailEvent(
        _id=new_object_id(),
        record_id=RECORD,
        campaign_id="11111111-1111-4111-8111-111111111111",
        user_id=new_object_id(),
        type=kind,
        occurred_at=NOW - timedelta(minutes=10) + timedelta(seconds=seconds),
        machine=reason is not None,
        machine_reason=reason,
        details=details,
    )


def verdicts(events: list[EmailEvent]) -> list[str | None]:
    """Each event's rule after settling: its own if it had one, "waiting" if not due."""
    decided = {event.id: verdict.reason for event, verdict in settle(events, RULES, now=NOW)}
    return [
        decided.get(event.id, "waiting" if event.settling else event.machine_reason)
        for event in events
    ]


def test_a_burst_of_two_links_is_a_scanner_whatever_its_user_agent() -> None:
    events = [
        fetch(EventType.OPEN, 20.0),
        fetch(EventType.CLICK, 20.3, link=0),
        fetch(EventType.CLICK, 20.5, link=1),
        fetch(EventType.UNSUBSCRIBE_PAGE, 20.8),
    ]
    assert verdicts(events) == [SCANNER_BURST] * 4
    (burst,) = bursts(events, RULES.burst)
    assert (burst.urls, burst.followed, round(burst.seconds, 1)) == (4, 3, 0.8)
    found = settle(events, RULES, now=NOW)[1][1].found
    assert found == {"urls": 4, "seconds": 0.8, "because": "links"}


def test_a_link_and_the_unsubscribe_link_are_a_burst_too() -> None:
    events = [fetch(EventType.CLICK, 100.0), fetch(EventType.UNSUBSCRIBE_PAGE, 104.0)]
    assert verdicts(events) == [SCANNER_BURST, SCANNER_BURST]


def test_a_person_opening_and_clicking_one_link_is_a_person() -> None:
    # The pixel as the message opens, the one link 2 s later, the same link again.
    events = [
        fetch(EventType.OPEN, 300.0),
        fetch(EventType.CLICK, 302.0),
        fetch(EventType.CLICK, 303.5),
    ]
    assert verdicts(events) == [None, None, None]


def test_two_links_a_minute_apart_are_a_person_twice() -> None:
    events = [fetch(EventType.CLICK, 60.0, link=0), fetch(EventType.CLICK, 120.0, link=1)]
    assert verdicts(events) == [None, None]


def test_requests_further_apart_than_the_window_are_separate_bursts() -> None:
    events = [fetch(EventType.CLICK, 10.0, link=0), fetch(EventType.CLICK, 15.01, link=1)]
    assert verdicts(events) == [None, None]
    chained = [fetch(EventType.CLICK, 10.0 + 4 * n, link=n) for n in range(5)]
    assert verdicts(chained) == [SCANNER_BURST] * 5  # each within 5 s of the one before


def test_a_head_request_makes_the_get_from_the_same_address_a_scanner() -> None:
    gateway = [
        fetch(EventType.CLICK, 30.0, reason="head_request", ip="gw"),
        fetch(EventType.CLICK, 30.4, ip="gw"),
    ]
    assert verdicts(gateway) == ["head_request", SCANNER_BURST]
    found = settle(gateway, RULES, now=NOW)[0][1].found
    assert found["because"] == "head_request"
    # A person behind a gateway that checks the link as they click: another address.
    behind = [
        fetch(EventType.CLICK, 30.0, reason="head_request", ip="gw"),
        fetch(EventType.CLICK, 30.4, ip="person"),
    ]
    assert verdicts(behind) == ["head_request", None]


def test_an_image_proxy_beside_a_click_does_not_make_it_a_machine() -> None:
    # Gmail fetches the pixel through its proxy as the person opens it; they click.
    events = [
        fetch(EventType.OPEN, 50.0, reason="google_image_proxy", ip="google"),
        fetch(EventType.CLICK, 53.0, ip="google"),
    ]
    assert verdicts(events) == ["google_image_proxy", None]


def test_the_trap_link_makes_its_whole_burst_a_scanner() -> None:
    events = [
        fetch(EventType.OPEN, 70.0, ip="x"),
        fetch(EventType.TRAP, 70.2, reason="trap_link", ip="y"),
    ]
    assert verdicts(events) == [SCANNER_BURST, "trap_link"]


def test_a_request_waits_until_its_window_has_passed() -> None:
    late = fetch(EventType.CLICK, 600.0 - 29)  # 29 s before NOW
    assert verdicts([late]) == ["waiting"]
    due = fetch(EventType.CLICK, 600.0 - 30)
    assert verdicts([due]) == [None]


def test_the_windows_are_settable_and_checked() -> None:
    narrow = MachineRules(burst=timedelta(seconds=1), settle=timedelta(seconds=10))
    events = [fetch(EventType.CLICK, 10.0, link=0), fetch(EventType.CLICK, 12.0, link=1)]
    decided = [verdict.reason for _, verdict in settle(events, narrow, now=NOW)]
    assert decided == [None, None]
    assert verdicts(events) == [SCANNER_BURST, SCANNER_BURST]
    with pytest.raises(ValueError, match="shorter than settling"):
        MachineRules(burst=timedelta(seconds=30), settle=timedelta(seconds=30))


def _shown(reason: str, found: dict[str, Any] | None = None) -> str | None:
    event = fetch(EventType.CLICK, 1.0, reason=reason)
    if found is not None:
        event.details["machine"] = found
    return explain(event)


def test_each_reason_in_words() -> None:
    assert (
        _shown(SCANNER_BURST, {"urls": 4, "seconds": 0.8, "because": "links"})
        == "scanner: burst of 4 links in 0.8 s"
    )
    assert (
        _shown(SCANNER_BURST, {"urls": 1, "seconds": 0.4, "because": "head_request"})
        == "scanner: burst of 1 links in 0.4 s, with a HEAD request from the same address"
    )
    assert _shown("known_network", {"network": "mimecast"}) == ("scanner: from mimecast's network")
    assert _shown("too_fast", {"seconds": 3.2}) == "scanner: 3.2 s after it was sent"
    assert _shown("apple_mpp") == "Apple Mail Privacy Protection"
    assert _shown("head_request") == "scanner: a HEAD request"
    assert _shown(SETTLING) == "deciding: person or machine"
    assert explain(fetch(EventType.CLICK, 1.0, reason=None)) is None


def test_the_shipped_networks_name_their_source_and_date() -> None:
    networks = shipped()
    assert networks.version >= date(2026, 12, 1)
    assert networks.ranges >= 20 and len(networks.networks) >= 5
    operators = {network.operator for network in networks.networks}
    assert {"apple", "microsoft", "mimecast", "proofpoint"} <= operators
    for network in networks.networks:
        assert network.source.startswith("https://") and network.as_of <= networks.version
    assert networks.find("17.1.2.3").operator == "apple"  # type: ignore[union-attr]
    apple = networks.find("17.1.2.3")
    assert apple is not None and apple.kind is NetworkKind.IMAGE_PROXY
    assert networks.find("203.0.113.9") is None and networks.find("garbage") is None


GOOD = """
version = 2026-12-05
[[network]]
name = "Our gateway"
operator = "ours"
kind = "link_scanner"
source = "https://example.com/ranges"
as_of = 2026-12-01
ranges = ["198.51.100.0/24", "2001:db8::/32"]
"""


def test_an_operators_own_file_is_used(tmp_path: Path) -> None:
    path = tmp_path / "networks.toml"
    path.write_text(GOOD)
    networks = KnownNetworks.load(path)
    assert networks.find("198.51.100.77").operator == "ours"  # type: ignore[union-attr]
    assert networks.find("2001:db8::1") is not None and networks.find("17.1.2.3") is None
    rules = MachineRules(networks=networks)
    assert judge_link(rules, Visitor(CHROME, "198.51.100.77"), sent_at=None, now=NOW) == Verdict(
        "known_network", {"network": "ours"}
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('"198.51.100.0/24"', '"198.51.100.1/24"'), "range '198.51.100.1/24' is not a network"),
        (('"198.51.100.0/24"', '"10.0.0.0/7"'), "wider than /8"),
        (('kind = "link_scanner"', 'kind = "proxy"'), "`kind` must be one of"),
        (("as_of = 2026-12-01", 'as_of = "soon"'), "`as_of` must be a date, got 'soon'"),
        (("version = 2026-12-05", ""), "`version` must be a date"),
        (('operator = "ours"', 'operator = ""'), "`operator` must be a str"),
        (("[[network]]", "[[networks]]"), "no [[network]] entries"),
        (('ranges = ["', 'ranges = "'), "not TOML"),
    ],
)
def test_a_bad_file_is_refused_naming_the_entry(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = tmp_path / "networks.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ConfigurationError, match=r"networks\.toml") as raised:
        KnownNetworks.load(path)
    assert message in str(raised.value)
    if "network 1" in str(raised.value) or "range" in message:
        assert "network 1" in str(raised.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        KnownNetworks.load(tmp_path / "nowhere.toml")
