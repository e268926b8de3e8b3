"""The domain checks from the user's side, on a real `mailramp serve` whose DNS is a real
server on loopback (dnsmasq, tests/support/mail_zone.py): the API, the command line and the
mailbox's health page in Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.mail_zone import PUBLIC_HOST, start_mail_zone
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, plain, run_mailramp, serving

PASSWORD = "a long enough passphrase"


class Site:
    def __init__(self, port: int, directory: Path, environment: dict[str, str]) -> None:
        self.local = f"http://127.0.0.1:{port}"
        self.directory = directory
        self.environment = environment

    def sign_up(self, login_id: str) -> httpx.Client:
        """A client signed in with a new account, sending the CSRF header pages send."""
        client = httpx.Client(base_url=self.local)
        response = client.post(
            "/api/v1/auth/signup",
            json={"user_name": "Ann", "login_id": login_id, "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        return client

    def api_key(self, login_id: str) -> httpx.Client:
        """A client for a new account's API key (no cookie)."""
        browser = self.sign_up(login_id)
        try:
            key = browser.post("/api/v1/api-keys", json={"name": "script"}).json()["key"]
        finally:
            browser.close()
        return httpx.Client(base_url=self.local, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    zone = start_mail_zone()
    port = free_port()
    directory = tmp_path_factory.mktemp("domain-checks")
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false",
        MAILRAMP_PUBLIC_BASE_URL=f"http://{PUBLIC_HOST}:{port}",
        MAILRAMP_DNS_SERVERS=zone.servers,
    )
    try:
        with serving(port, cwd=directory, env=environment):
            yield Site(port, directory, environment)
    finally:
        zone.stop()


def _gmail(email: str) -> dict[str, Any]:
    return {"email": email, "provider": "gmail", "access_token": "token"}


def _verdicts(mailbox: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["verdict"] for check in mailbox["dns_checks"]}


def test_the_api_checks_a_domain_and_says_what_to_publish(site: Site) -> None:
    with site.api_key("api@nodmarc.example") as api, site.api_key("eve@good.example") as eve:
        mailbox = api.post("/api/v1/mailboxes", json=_gmail("api@nodmarc.example")).json()
        assert mailbox["dns_checks"] == [] and mailbox["dns_checked_at"] is None

        checked = api.post(f"/api/v1/mailboxes/{mailbox['_id']}/dns-check")

        assert checked.status_code == 200, checked.text
        body = checked.json()
        assert _verdicts(body) == {
            "mx": "pass",
            "spf": "pass",
            "dkim": "pass",
            "dmarc": "fail",
            "tracking_domain": "warn",
        }
        dmarc = body["dns_checks"][3]
        assert dmarc["record"] == (
            '_dmarc.nodmarc.example. TXT "v=DMARC1; p=quarantine; '
            'rua=mailto:dmarc-reports@nodmarc.example"'
        )
        assert body["dns_checked_at"] is not None and body["dns_check_problem"] is None
        assert (
            api.get(f"/api/v1/mailboxes/{mailbox['_id']}").json()["dns_checks"]
            == (body["dns_checks"])
        )

        # Selectors are DNS labels: anything else is refused, naming the field.
        refused = api.patch(
            f"/api/v1/mailboxes/{mailbox['_id']}", json={"dkim_selectors": ["s1", "not one!"]}
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["field"].startswith("dkim_selectors")
        named = api.patch(
            f"/api/v1/mailboxes/{mailbox['_id']}", json={"dkim_selectors": ["S1", "s1", "k2"]}
        )
        assert named.json()["dkim_selectors"] == ["s1", "k2"]
        unsigned = api.post(f"/api/v1/mailboxes/{mailbox['_id']}/dns-check").json()
        assert unsigned["dns_checks"][2]["found"].startswith(
            "no DKIM key at s1._domainkey.nodmarc.example, k2._domainkey.nodmarc.example"
        )

        # No brake holds it: nothing to resume, and the answer says so.
        resumed = api.post(f"/api/v1/mailboxes/{mailbox['_id']}/resume")
        assert resumed.status_code == 409
        assert (
            resumed.json()["error"]["message"] == "braked_at: this mailbox is not held by a brake"
        )

        # Another user's mailbox is not found, and nothing about it is checked.
        assert eve.post(f"/api/v1/mailboxes/{mailbox['_id']}/dns-check").status_code == 404


def test_the_command_line_prints_each_check_and_fails_when_one_fails(site: Site) -> None:
    def cli(*args: str, stdin: str | None = None) -> Any:
        return run_mailramp(*args, cwd=site.directory, env=site.environment, stdin=stdin)

    created = cli(
        "user", "create", "--name", "Cy", "--login", "cli@nomx.example", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    for email in ("cli@nomx.example", "cli@good.example"):
        added = cli(
            "mailbox", "add", "--user", "cli@nomx.example", "--email", email,
            "--smtp-host", "smtp.gmail.com", "--password-stdin", stdin="smtp-pass\n",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr

    broken = cli("mailbox", "check", "cli@nomx.example", "--user", "cli@nomx.example")
    good = cli("mailbox", "check", "cli@good.example", "--user", "cli@nomx.example", "--json")

    assert broken.returncode == 1, broken.stderr
    lines = broken.stdout.splitlines()
    assert lines[0].startswith("nomx.example (cli@nomx.example), checked ")
    assert lines[1].startswith("fail  mx               nomx.example has no MX record: ")
    assert lines[2] == f"{'':<22} publish: nomx.example. MX 1 smtp.google.com."
    assert lines[3].startswith("pass  spf              v=spf1 include:_spf.google.com ~all")
    assert good.returncode == 0, good.stderr
    assert [check["verdict"] for check in json.loads(good.stdout)["dns_checks"]] == [
        "pass",
        "pass",
        "pass",
        "pass",
        "warn",
    ]
    # The warm-up pool from the shell: neither mailbox takes part yet.
    status = cli("warmup", "status", "--user", "cli@nomx.example")
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines() == [
        f"{'cli@nomx.example':<32} warm-up off  placement -  limit 50/day",
        f"{'cli@good.example':<32} warm-up off  placement -  limit 50/day",
    ]
    rows = json.loads(cli("warmup", "status", "--user", "cli@nomx.example", "--json").stdout)
    assert [(row["email"], row["enabled"], row["limit_today"]) for row in rows] == [
        ("cli@nomx.example", False, 50),
        ("cli@good.example", False, 50),
    ]

    unknown = cli("mailbox", "check", "nobody@nomx.example", "--user", "cli@nomx.example")
    assert unknown.returncode != 0
    assert "nobody@nomx.example" in plain(unknown.stderr)


def test_the_health_page_shows_each_check_with_its_record_and_checks_again(
    site: Site, page: Any
) -> None:
    page.goto(site.local + "/signup")
    page.fill("#user_name", "Pat")
    page.fill("#login_id", "pat@pnone.example")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/mailboxes")
    page.fill("#email", "pat@pnone.example")
    page.fill("#smtp_host", "smtp.gmail.com")
    page.fill("#password", "smtp-pass")
    page.click("text=Link mailbox")
    page.click("text=Health")
    assert page.inner_text("#dns-checked") == "Not checked yet."

    page.click("#dns button[type=submit]")

    rows = {
        row.get_attribute("data-check"): row.inner_text()
        for row in page.query_selector_all("#dns-checks tbody tr")
    }
    assert list(rows) == ["mx", "spf", "dkim", "dmarc", "tracking_domain"]
    assert "\tpass\t" in rows["spf"]
    assert "\twarn\t" in rows["dmarc"]
    assert (
        '_dmarc.pnone.example. TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@pnone.example"'
    ) in rows["dmarc"]
    assert f"links.pnone.example. CNAME {PUBLIC_HOST}." in rows["tracking_domain"]

    # A selector the domain does not publish: DKIM fails, naming it.
    page.fill("#dkim_selectors", "s1")
    page.click("#dns button[type=submit]")
    dkim = page.inner_text("#dns-checks tr[data-check=dkim]")
    assert "\tfail\t" in dkim and "no DKIM key at s1._domainkey.pnone.example" in dkim
    page.fill("#dkim_selectors", "bad selector!")
    page.click("#dns button[type=submit]")
    assert page.get_attribute("#dkim_selectors", "aria-invalid") == "true"
    assert page.input_value("#dkim_selectors") == "bad selector!"

    page.goto(site.local + "/mailboxes")
    assert page.inner_text("[data-dns-verdict]") == "DNS fail"
    mailbox_id = page.get_attribute("[data-dns-verdict]", "data-dns-verdict")
    page.goto(f"{site.local}/mailboxes/{mailbox_id}/health")
    assert page.input_value("#dkim_selectors") == "s1"
