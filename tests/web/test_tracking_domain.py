"""A custom tracking domain from the user's side: set on the mailbox's page (Chromium) and
through the API, checked against a real DNS server on loopback (dnsmasq, the zone in
tests/conftest.py), then an email sent through a real SMTP server whose links use it, and
those links answered by the same `mailramp serve` when asked for by that name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from mailramp.kit.dns import DnsResolver, parse_servers
from tests.conftest import PUBLIC_HOST
from tests.support import scenario
from tests.support.dns_server import DnsServer
from tests.support.loops import run_blocking
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving
from tests.support.smtp import SmtpServer
from tests.web.conftest import README_WIDTHS, fill_campaign_form, screenshot

PASSWORD = "a long enough passphrase"


class Site:
    """`mailramp serve` whose public address is http://track.mailramp.example:PORT (a name
    only the test zone knows), reached by the tests at 127.0.0.1."""

    def __init__(self, port: int, directory: Path, zone: DnsServer) -> None:
        self.port = port
        self.directory = directory
        self.zone = zone
        self.local = f"http://127.0.0.1:{port}"
        self.public = f"http://{PUBLIC_HOST}:{port}"

    def address_of(self, host: str) -> str:
        """What the test zone says `host` is (as a recipient's resolver would)."""
        resolver = DnsResolver(parse_servers(self.zone.servers))
        addresses = run_blocking(resolver.resolve(host)).addresses
        assert len(addresses) == 1, addresses
        return next(iter(addresses))

    def follow(self, url: str, *, user_agent: str) -> httpx.Response:
        """GET `url` as a recipient's mail client would: its host looked up in the zone,
        the request sent there with that name in its Host header."""
        parts = urlsplit(url)
        assert parts.hostname is not None
        direct = url.replace(parts.hostname, self.address_of(parts.hostname), 1)
        return httpx.get(direct, headers={"Host": parts.netloc, "User-Agent": user_agent})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, dns_zone: DnsServer) -> Iterator[Site]:
    port = free_port()
    directory = tmp_path_factory.mktemp("tracking-domain")
    site = Site(port, directory, dns_zone)
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false",
        MAILRAMP_ALLOW_PRIVATE_HOSTS="true",
        MAILRAMP_PUBLIC_BASE_URL=site.public,
        MAILRAMP_DNS_SERVERS=dns_zone.servers,
    )
    with serving(port, cwd=directory, env=environment):
        yield site


def _sign_up_and_link(page: Any, site: Site, email: str, smtp_port: int) -> str:
    """Sign up, link a plain SMTP mailbox on loopback, open its edit page; its id."""
    page.goto(site.local + "/signup")
    page.fill("#user_name", "Tess")
    page.fill("#login_id", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/mailboxes")
    page.fill("#email", email)
    page.fill("#smtp_host", "127.0.0.1")
    page.fill("#smtp_port", str(smtp_port))
    page.select_option("#smtp_security", "plain")
    page.fill("#password", "smtp-pass")
    page.click("text=Link mailbox")
    page.click("text=Edit")
    mailbox_id = page.url.split("/mailboxes/")[1].split("/")[0]
    return mailbox_id


def _save_domain(page: Any, domain: str) -> None:
    page.fill("#tracking_domain", domain)
    page.click("#tracking-domain button[type=submit]")


def test_a_tracking_domain_set_on_the_page_carries_the_links_and_is_served_here(
    site: Site, page: Any, tmp_path: Path
) -> None:
    smtp = SmtpServer({"tess@acme.example": "smtp-pass"}).start()
    try:
        _sign_up_and_link(page, site, "tess@acme.example", smtp.port)
        card = page.inner_text("#tracking-domain")
        assert f"add a CNAME record from it to {PUBLIC_HOST}" in " ".join(card.split())

        # Not a host name: the field is marked, the message names what is wrong.
        _save_domain(page, "https://links.acme.example/go")
        assert page.get_attribute("#tracking_domain", "aria-invalid") == "true"
        assert "is not a host name" in page.inner_text("#tracking_domain-error")
        assert page.input_value("#tracking_domain") == "https://links.acme.example/go"

        # A CNAME elsewhere: kept, not used, and the page says which record to put instead.
        _save_domain(page, "go.acme.example")
        state = page.inner_text("#tracking-domain-state")
        assert "Not in use yet: go.acme.example" in state
        page.goto(site.local + "/mailboxes")
        assert "links: go.acme.example (not in use: see why)" in page.inner_text("main")
        page.click("text=see why")
        assert f"replace it with go.acme.example. CNAME {PUBLIC_HOST}." in state

        # The right CNAME: in use.
        _save_domain(page, "links.acme.example")
        state = page.inner_text("#tracking-domain-state")
        assert "In use: links go through links.acme.example" in state
        screenshot(page, "mailbox-edit", widths=README_WIDTHS)
        page.goto(site.local + "/mailboxes")
        assert page.inner_text("[data-tracking-domain]") == "links: links.acme.example"

        message = '<p>Hi, see <a href="https://acme.example/offer">our offer</a>.</p>'
        fill_campaign_form(
            page, site.local, name="Own links", subject="Hi", message=message, duration="2"
        )
        people = tmp_path / "people.csv"
        people.write_text("email\nbo@example.com\n")
        page.set_input_files("#recipients", str(people))
        page.click("text=Create campaign")
        assert "1 accepted" in page.inner_text("p.notice")
        scenario.send_everything_now(site.directory, site.public)
    finally:
        smtp.stop()

    (delivered,) = [item.message for item in smtp.inbox.messages]
    html = delivered.get_body(preferencelist=("html",)).get_content()
    base = f"http://links.acme.example:{site.port}/t/"
    (click,) = re.findall(r'href="(http://[^"]+/t/c/[^"]+)"', html)
    (pixel,) = re.findall(r'<img src="([^"]+)"', html)
    unsubscribe = delivered["List-Unsubscribe"].strip().strip("<>")
    assert click.startswith(base) and pixel.startswith(base) and unsubscribe.startswith(base)
    assert PUBLIC_HOST not in delivered.as_string()

    # The recipient's client resolves links.acme.example (to 127.0.0.1 through the CNAME)
    # and this same server answers for that name.
    browser = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
    answer = site.follow(click, user_agent=browser)
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://acme.example/offer"
    opened = site.follow(pixel, user_agent=browser)
    assert opened.status_code == 200 and opened.content.startswith(b"GIF89a")
    (campaign,) = page.request.get(f"{site.local}/api/v1/campaigns").json()["items"]
    metrics = page.request.get(
        f"{site.local}/api/v1/campaigns/{campaign['campaign_id']}/metrics"
    ).json()
    assert (metrics["total_clicks"], metrics["total_opened"]) == (1, 1)

    # What a reverse proxy with on-demand TLS asks before getting a certificate for a name.
    asked = {
        name: httpx.get(f"{site.local}/t/tracking-domain", params={"domain": name}).status_code
        for name in ("links.acme.example", "go.acme.example", "")
    }
    assert asked == {"links.acme.example": 200, "go.acme.example": 404, "": 404}


def test_the_api_sets_checks_and_removes_a_tracking_domain(site: Site) -> None:
    client = httpx.Client(base_url=site.local)
    try:
        signed = client.post(
            "/api/v1/auth/signup",
            json={"user_name": "Api", "login_id": "api-domain", "password": PASSWORD},
        )
        assert signed.status_code == 201, signed.text
        client.headers["X-CSRF-Token"] = signed.json()["csrf_token"]
        linked = client.post(
            "/api/v1/mailboxes",
            json={
                "email": "api@acme.example",
                "provider": "smtp",
                "smtp_host": "smtp.acme.example",
                "password": "smtp-pass",
            },
        )
        assert linked.status_code == 201, linked.text
        box = linked.json()["mailbox_id"]

        refused = client.put(
            f"/api/v1/mailboxes/{box}/tracking-domain", json={"domain": "acme.example"}
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["field"] == "tracking_domain"
        assert "must be a subdomain" in refused.json()["error"]["message"]

        wrong = client.put(
            f"/api/v1/mailboxes/{box}/tracking-domain", json={"domain": "wrong.acme.example"}
        )
        assert wrong.status_code == 200
        body = wrong.json()
        assert body["tracking_domain"] == "wrong.acme.example"
        assert body["tracking_domain_verified_at"] is None
        assert "points at 192.0.2.8" in body["tracking_domain_problem"]

        right = client.put(
            f"/api/v1/mailboxes/{box}/tracking-domain", json={"domain": "hop.acme.example"}
        )
        assert right.json()["tracking_domain_verified_at"] is not None
        assert right.json()["tracking_domain_problem"] is None
        checked = client.post(f"/api/v1/mailboxes/{box}/tracking-domain/check")
        assert checked.status_code == 200
        checked_at = datetime.fromisoformat(checked.json()["tracking_domain_checked_at"])
        assert checked_at >= datetime.fromisoformat(right.json()["tracking_domain_checked_at"])
        assert checked.json()["tracking_domain_verified_at"] is not None

        removed = client.delete(f"/api/v1/mailboxes/{box}/tracking-domain")
        assert removed.status_code == 200
        assert removed.json()["tracking_domain"] is None
        again = client.post(f"/api/v1/mailboxes/{box}/tracking-domain/check")
        assert again.status_code == 409
        assert again.json()["error"]["field"] == "tracking_domain"
    finally:
        client.close()
