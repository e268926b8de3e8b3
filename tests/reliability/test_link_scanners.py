"""Item 7 of the reliability battery: link scanners, on SQLite and PostgreSQL.

A campaign is really sent (worker → SMTP server on loopback) and served by `mailramp
serve`. Security scanners then fetch every URL in a received email — the open pixel, the
tracking links, the unsubscribe link in the body and the `List-Unsubscribe` header — the
way they do: HEAD and GET, with their own user agents or a browser's, seconds after
delivery. What a user must see afterwards:

- nobody is unsubscribed or suppressed, and `total_unsubscribed` did not move;
- the scanners' opens and clicks are recorded as machine events: `total_opened` and
  `total_clicks` count them (recipients, once each), the human figures do not;
- the RFC 8058 one-click POST (`List-Unsubscribe=One-Click`) unsubscribes, exactly once —
  repeated, or eight at the same moment, it counts one unsubscribe and one suppression;
- the confirmation page a GET shows changes nothing until a person presses its button,
  which POSTs.

Reproduce: MAILRAMP_TEST_STRICT=1 .venv/bin/pytest -q -s -p no:cacheprovider
tests/reliability/test_link_scanners.py
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, new_postgres_database
from tests.support.loops import run_blocking
from tests.support.tracking_site import SenderSpec, TrackingSite, tracking_site

pytestmark = pytest.mark.reliability

LINKS = ("https://acme.com/offer?e={{email}}", "https://acme.com/about")
SCANNED = {
    # Proofpoint-style gateway: its own user agent, GET only.
    "scan-proofpoint@example.com": {"agent": "Mozilla/5.0 (compatible; Proofpoint URL Defense)"},
    # Safe-Links-style: a browser's user agent, HEAD then GET on every link (not the
    # images), right on delivery.
    "scan-browser@example.com": {
        "agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        "head": True,
        "links_only": True,
    },
    # A script: an HTTP library's default user agent.
    "scan-script@example.com": {"agent": None},
}
ONE_CLICK = "one-click@example.com"
BURST = "burst@example.com"
PERSON = "person@example.com"
UNTOUCHED = "untouched@example.com"
RECIPIENTS = (*SCANNED, ONE_CLICK, BURST, PERSON, UNTOUCHED)
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5"


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> Iterator[TrackingSite]:
    directory = tmp_path_factory.mktemp(f"scanners-{request.param}")
    if request.param == "sqlite":
        database = directory / "mailramp.db"
        database.write_bytes(sqlite_template.read_bytes())
        url = f"sqlite:///{database}"
    else:
        url = run_blocking(new_postgres_database(request.getfixturevalue("postgres")))
    with tracking_site(directory, url, [SenderSpec("ann", LINKS, RECIPIENTS)]) as served:
        yield served


def _record(site: TrackingSite, state: dict[str, Any], recipient: str) -> dict[str, Any]:
    """The record's status and event times, by name."""
    from tests.support.tracking_site import EVENT_TIMES

    status, *times = state["records"][site.sent[recipient].record_id]
    return {"status": status} | dict(zip(EVENT_TIMES, times, strict=True))


def _counters(site: TrackingSite, state: dict[str, Any]) -> dict[str, int]:
    return dict(state["counters"][site.campaigns["ann"]])


def _new_events(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, ...]]:
    remaining = list(after["events"])
    for event in before["events"]:
        remaining.remove(event)
    return remaining


class _Forms(HTMLParser):
    """The forms of a page (method, action, fields, buttons) and its links."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.links: list[str] = []
        self.refresh = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append(
                {
                    "method": (values.get("method") or "get").lower(),
                    "action": values.get("action"),
                    "fields": {},
                    "buttons": 0,
                }
            )
        elif tag == "input" and self.forms and values.get("type") != "submit":
            self.forms[-1]["fields"][values.get("name")] = values.get("value") or ""
        elif tag == "button" or (tag == "input" and values.get("type") == "submit"):
            self.forms[-1]["buttons"] += 1
        elif tag in ("a", "link", "img", "script", "iframe") and (
            values.get("href") or values.get("src")
        ):
            self.links.append(str(values.get("href") or values.get("src")))
        elif tag == "meta" and (values.get("http-equiv") or "").lower() == "refresh":
            self.refresh = True


def _scan(client: httpx.Client, urls: list[str], *, agent: str | None, head: bool) -> list[int]:
    """What a scanner does with the URLs: HEAD (some) and GET each, never following a
    redirect off the site (it would only learn the destination)."""
    headers = {} if agent is None else {"User-Agent": agent}
    statuses = []
    for url in urls:
        if head:
            statuses.append(client.head(url, headers=headers).status_code)
        statuses.append(client.get(url, headers=headers).status_code)
    return statuses


def test_scanners_fetching_every_link_unsubscribe_nobody(site: TrackingSite) -> None:
    before = site.state()
    urls_per_email = {}
    with httpx.Client(timeout=30) as client:
        for recipient, profile in SCANNED.items():
            sent = site.sent[recipient]
            found = sent.every_url()
            # The text part shows the links as written; everything else is tracked.
            urls = [url for url in found if url.startswith(site.base)]
            written = [url for url in found if not url.startswith(site.base)]
            assert written and all(url.startswith("https://acme.com/") for url in written)
            assert all(url in sent.plain() for url in written)
            assert sent.list_unsubscribe in urls and sent.open_url in urls
            assert set(sent.click_urls) <= set(urls) and len(sent.click_urls) == len(LINKS)
            body_unsubscribe = re.findall(r'href="([^"]+/t/u/[^"]+)"', sent.html())
            assert body_unsubscribe and set(body_unsubscribe) <= set(urls)
            if profile.get("head"):
                # Right on delivery, as the gateway checks the message before handing it on.
                site.touch_sent_at(recipient, datetime.now(UTC) - timedelta(seconds=1))
            if profile.get("links_only"):
                urls = [url for url in urls if url != sent.open_url]
            statuses = _scan(client, urls, agent=profile["agent"], head=bool(profile.get("head")))
            urls_per_email[recipient] = len(urls)
            assert set(statuses) <= {200, 302, 405}, statuses
            page = client.get(sent.list_unsubscribe)
            assert page.status_code == 200 and "Unsubscribe?" in page.text
    site.settle()
    after = site.state()

    # Nobody unsubscribed, nothing suppressed.
    assert after["suppressions"] == before["suppressions"]
    for recipient in SCANNED:
        assert _record(site, after, recipient)["unsubscribed_at"] is None
    new = _new_events(before, after)
    assert {event[0] for event in new} == {"open", "click", "unsubscribe_page"}
    # Every scanner request was recognised as a machine: none counts as a person's.
    assert all(event[1] == "True" for event in new), [e for e in new if e[1] != "True"]
    reasons = sorted({event[2] for event in new})
    # Opens and clicks count recipients, once each; the human figures did not move.
    counted, was = _counters(site, after), _counters(site, before)
    scanned = len(SCANNED)
    assert counted == was | {
        "total_opened": was["total_opened"] + scanned,
        "total_clicks": was["total_clicks"] + scanned,
    }
    assert counted["total_unsubscribed"] == 0 and counted["total_human_clicks"] == 0
    assert counted["total_human_opened"] == 0
    print(
        f"\n[item 7 · {site.settings.backend}] {scanned} scanners fetched "
        f"{sum(urls_per_email.values())} URLs ({', '.join(map(str, urls_per_email.values()))} "
        f"per email): {len(new)} events, all machine ({', '.join(reasons)}); "
        f"unsubscribed 0, suppressed 0; total_opened +{scanned}, total_clicks +{scanned}, "
        "human figures +0"
    )


def test_the_one_click_post_unsubscribes_exactly_once(site: TrackingSite) -> None:
    url = site.sent[ONE_CLICK].list_unsubscribe
    assert site.sent[ONE_CLICK].message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    before = site.state()
    with httpx.Client(timeout=30) as client:
        first = client.post(url, content=ONE_CLICK_BODY, headers=FORM)
        once = site.state()
        second = client.post(url, content=ONE_CLICK_BODY, headers=FORM)
        again = client.get(url)  # a scanner, or the person, looking at the link later
    twice = site.state()
    assert first.status_code == second.status_code == 200
    assert "You are unsubscribed" in first.text and "You are unsubscribed" in second.text
    assert again.status_code == 200 and "You are unsubscribed" in again.text
    assert "<form" not in again.text

    record = _record(site, once, ONE_CLICK)
    assert record["unsubscribed_at"] is not None
    owner = site.sent[ONE_CLICK].user_id
    assert once["suppressions"] == [*before["suppressions"], (owner, ONE_CLICK, "unsubscribed")]
    assert _counters(site, once)["total_unsubscribed"] == (
        _counters(site, before)["total_unsubscribed"] + 1
    )
    # The second POST changes no state: the same unsubscribe time, one suppression, the
    # counter +1 only once (the event log keeps a line per request, by design).
    assert _record(site, twice, ONE_CLICK) == record
    assert twice["suppressions"] == once["suppressions"]
    assert twice["counters"] == once["counters"]
    # ... and the page a GET shows afterwards is logged as fetched (no person's act).
    assert sorted(e[0] for e in _new_events(once, twice)) == ["unsubscribe", "unsubscribe_page"]


def test_simultaneous_one_click_posts_count_one_unsubscribe(site: TrackingSite) -> None:
    url = site.sent[BURST].list_unsubscribe
    before = site.state()

    def post(_: int) -> int:
        with httpx.Client(timeout=30) as client:
            return client.post(url, content=ONE_CLICK_BODY, headers=FORM).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(post, range(8)))
    after = site.state()
    assert statuses == [200] * 8
    owner = site.sent[BURST].user_id
    added = [s for s in after["suppressions"] if s not in before["suppressions"]]
    assert added == [(owner, BURST, "unsubscribed")]
    assert _counters(site, after)["total_unsubscribed"] == (
        _counters(site, before)["total_unsubscribed"] + 1
    )
    assert len(_new_events(before, after)) == 8
    print(
        f"\n[item 7 · {site.settings.backend}] 8 simultaneous one-click POSTs: all 200, "
        "1 unsubscribe counted, 1 suppression"
    )


def test_the_confirmation_page_waits_for_a_person_to_press_its_button(
    site: TrackingSite,
) -> None:
    sent = site.sent[PERSON]
    (link,) = set(re.findall(r'href="([^"]+/t/u/[^"]+)"', sent.html()))
    link = html.unescape(link)
    before = site.state()
    with httpx.Client(timeout=30, headers={"User-Agent": BROWSER}) as client:
        pages = [client.get(link) for _ in range(3)]  # looked at, reloaded, scanned
        after_get = site.state()
        page = pages[-1]
        assert all(p.status_code == 200 for p in pages)
        assert "Unsubscribe?" in page.text and html.escape(PERSON) in page.text
        forms = _Forms()
        forms.feed(page.text)
        # One form, POSTed to this same address (no action), with one button to press;
        # no link or refresh a scanner could follow to unsubscribe.
        assert len(forms.forms) == 1
        (form,) = forms.forms
        assert form["method"] == "post" and form["action"] in (None, "")
        assert form["buttons"] == 1
        assert not forms.refresh and "<script" not in page.text.lower()
        assert not [href for href in forms.links if "/t/" in href]
        # Nothing changed but the log: each fetch of the page is noted (a scanner's fetch
        # of it joins its burst), counted nowhere.
        assert after_get | {"events": before["events"]} == before
        fetched = _new_events(before, after_get)
        assert [event[0] for event in fetched] == ["unsubscribe_page"] * 3

        pressed = client.post(link, data=form["fields"])  # the button: a form POST
    after = site.state()
    assert pressed.status_code == 200 and "You are unsubscribed" in pressed.text
    assert _record(site, after, PERSON)["unsubscribed_at"] is not None
    owner = sent.user_id
    assert (owner, PERSON, "unsubscribed") in after["suppressions"]
    assert _counters(site, after)["total_unsubscribed"] == (
        _counters(site, before)["total_unsubscribed"] + 1
    )
    # Nobody else was touched by any of this.
    assert _record(site, after, UNTOUCHED) == _record(site, before, UNTOUCHED)
