"""The dashboard in a real browser (Playwright driving Debian's Chromium) against
`mailramp serve` on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from standardwebhooks import Webhook

from mailramp.config import Settings
from tests.support import scenario
from tests.support.clock import system_now
from tests.support.inbound_mail import arf_complaint, exchange_bounce
from tests.support.loops import run_blocking
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, run_mailramp, serving
from tests.support.scenario import message_arrives, reply_arrives
from tests.support.smtp import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver
from tests.web.conftest import (
    README_WIDTHS,
    cut_off_the_internet,
    fill_campaign_form,
    screenshot,
)

SITE_DIRECTORIES: list[Path] = []


def send_everything_now(site: str) -> None:
    """Every record due, sent by worker passes on the server's database, dated a minute back."""
    scenario.send_everything_now(SITE_DIRECTORIES[0], site)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    directory = tmp_path_factory.mktemp("dashboard")
    SITE_DIRECTORIES.append(directory)
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false",
        MAILRAMP_ALLOW_PRIVATE_HOSTS="true",
        MAILRAMP_PUBLIC_BASE_URL=base,
    )
    with serving(port, cwd=directory, env=environment):
        yield base


def test_sign_up_link_a_mailbox_and_see_it(site: str, page: Any, tmp_path: Path) -> None:
    smtp = SmtpServer({"ann@acme.com": "smtp-pass"}).start()
    try:
        response = page.goto(site + "/")
        assert page.url.endswith("/signin")
        assert response is not None
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        screenshot(page, "signin")
        page.click("text=Create an account")
        page.fill("#user_name", "Ann Example")
        page.fill("#login_id", "ann@example.com")
        page.fill("#password", "a long enough passphrase")
        page.click("button[type=submit]")
        page.wait_for_url("**/mailboxes")
        assert "No mailbox yet" in page.inner_text("main")
        screenshot(page, "mailboxes-empty")

        # A mistake: the error sits next to its field and what was typed stays.
        page.fill("#email", "not-an-address")
        page.fill("#display_name", "Ann from Acme")
        page.fill("#smtp_host", "127.0.0.1")
        page.fill("#password", "smtp-pass")
        page.click("text=Link mailbox")
        assert "not a valid email address" in page.inner_text("#email-error")
        assert page.input_value("#display_name") == "Ann from Acme"
        assert page.get_attribute("#email", "aria-invalid") == "true"
        assert page.input_value("#password") == ""  # never echoed back

        page.fill("#email", "ann@acme.com")
        page.fill("#smtp_port", str(smtp.port))
        page.select_option("#smtp_security", "plain")
        page.fill("#password", "smtp-pass")
        page.fill("#daily_limit", "80")
        page.click("text=Link mailbox")
        row = page.locator("tr[data-mailbox='ann@acme.com']")
        assert "primary" in row.inner_text() and "80" in row.inner_text()
        row.locator("text=Pause").click()
        assert "inactive" in page.locator("tr[data-mailbox='ann@acme.com']").inner_text()
        screenshot(page, "mailboxes", widths=README_WIDTHS)

        page.click("text=Campaigns")
        assert "No campaign yet" in page.inner_text("main")
        page.click("text=Sign out")
        page.wait_for_url("**/signin")
        page.goto(site + "/mailboxes")
        assert page.url.endswith("/signin")
        assert page.problems == []
    finally:
        smtp.stop()


def test_wrong_password_and_forged_forms(site: str, page: Any, browser: Any) -> None:
    page.goto(site + "/signin")
    page.fill("#login_id", "nobody@example.com")
    page.fill("#password", "whatever it is")
    page.click("button[type=submit]")
    assert "invalid login or password" in page.inner_text("main")
    assert page.input_value("#login_id") == "nobody@example.com"
    # A form posted without the session's CSRF token changes nothing.
    page.goto(site + "/signup")
    page.fill("#user_name", "Bo")
    page.fill("#login_id", "bo@example.com")
    page.fill("#password", "a long enough passphrase")
    page.click("button[type=submit]")
    page.wait_for_url("**/mailboxes")
    forged = page.request.post(
        site + "/mailboxes",
        form={
            "email": "x@acme.com",
            "smtp_host": "smtp.acme.com",
            "password": "pw",
            "csrf_token": "forged",
        },
    )
    assert forged.status == 403
    page.reload()
    assert "No mailbox yet" in page.inner_text("main")
    assert page.problems == []


def test_the_csp_blocks_inline_script_and_the_test_would_see_it(site: str, page: Any) -> None:
    page.goto(site + "/signin")
    with pytest.raises(Exception, match=r"Content Security Policy|Refused"):
        page.add_script_tag(content="window.injected = true")
    assert page.evaluate("window.injected === undefined")
    assert any("Content Security Policy" in problem for problem in page.problems)


def test_create_a_campaign_with_a_csv_send_it_and_watch_the_counters(
    site: str, page: Any, tmp_path: Path
) -> None:
    import re
    from datetime import datetime, timedelta

    import httpx

    smtp = SmtpServer({"cam@acme.com": "smtp-pass"}).start()
    try:
        page.goto(site + "/signup")
        page.fill("#user_name", "Cam")
        page.fill("#login_id", "cam@example.com")
        page.fill("#password", "a long enough passphrase")
        page.click("button[type=submit]")
        page.wait_for_url("**/mailboxes")
        _link_mailbox(page, "cam@acme.com", smtp.port)
        page.click("text=Campaigns")
        page.click("text=New campaign")
        screenshot(page, "campaign-form", widths=README_WIDTHS)
        # Both tracking switches start on; the form says what each does.
        assert page.is_checked("#track_opens") and page.is_checked("#track_clicks")
        page.fill("#campaign_name", "Browser launch")
        page.fill("#subject", "Hello {{first_name|there}}")
        page.select_option("#message_format", "html")
        page.fill(
            "#message",
            '<p>Hi {{first_name|there}}, see <a href="https://acme.com/launch">the launch</a></p>'
            '<img src="https://images.example.net/logo.png" alt="Acme">'
            "<script>document.body.setAttribute('data-ran', 'yes')</script>",
        )
        start = datetime.now().astimezone().astimezone(
            __import__("zoneinfo").ZoneInfo("America/New_York")
        ) - timedelta(minutes=5)
        page.fill("#start_time", start.strftime("%Y-%m-%dT%H:%M"))
        page.fill("#duration", "0")
        page.click("text=Create campaign")
        assert "greater than 0" in page.inner_text("#duration-error")
        assert page.input_value("#campaign_name") == "Browser launch"
        screenshot(page, "campaign-new")
        page.fill("#duration", "0.05")  # 3 minutes: the API takes it, so must the form
        assert page.eval_on_selector("#duration", "input => input.checkValidity()") is True
        page.fill("#duration", "2")
        csv_file = tmp_path / "people.csv"
        csv_file.write_text(
            "email,first_name\nann@example.com,<script>alert('x')</script>\n"
            "bad-address,X\nben@example.com,Ben\n"
        )
        page.set_input_files("#recipients", str(csv_file))
        page.click("text=Create campaign")
        notice = page.inner_text("p.notice")
        assert "2 accepted" in notice and "row 3" in notice
        assert page.inner_text("#plan").startswith("2 emails: 0 sent, 2 waiting; the next at")
        assert "EST" in page.inner_text("#plan")  # the browser's time zone, not UTC
        assert "<script>alert('x')</script>" in page.inner_text("#recipients")  # shown as text
        # The preview renders the email as the recipient will see it, and nothing in it
        # runs or loads from the web.
        reached = cut_off_the_internet(page, site)  # requests that got as far as the network
        blocked: list[str] = []  # ... and those the browser refused first
        page.on(
            "requestfailed",
            lambda r: r.url.startswith(site) or blocked.append(f"{r.url} {r.failure}"),
        )
        page.reload()
        assert page.inner_text("#preview h2") == "Preview for ann@example.com"
        body = page.frame_locator("#preview-frame").locator("body")
        assert "Hi <script>alert('x')</script>, see the launch" in body.inner_text()
        assert body.get_attribute("data-ran") is None  # its script did not run
        headers = page.inner_text("#preview-headers")
        assert "Subject\tHello <script>alert('x')</script>" in headers
        assert "List-Unsubscribe" in headers and "To\tann@example.com" in headers
        assert "the launch" in page.inner_text("#preview-text")
        page.select_option("#preview-recipient", label="ben@example.com")
        page.click("#preview button:has-text('Show')")
        assert page.inner_text("#preview h2") == "Preview for ben@example.com"
        assert "Hi Ben, see the launch" in body.inner_text()
        screenshot(page, "campaign-preview")
        # The remote image never left: refused by the frame's policy before any request.
        assert reached == []
        assert blocked and set(blocked) == {"https://images.example.net/logo.png csp"}
        page.unroute("**/*")
        page.click("button:has-text('Pause')")
        assert "paused" in page.inner_text("h1")
        page.click("button:has-text('Resume')")
        assert "active" in page.inner_text("h1")  # its start has passed
        send_everything_now(site)
        assert sorted(smtp.inbox.count_by_recipient()) == ["ann@example.com", "ben@example.com"]
        page.reload()
        campaign_path = page.url.removeprefix(site).split("?")[0]
        assert page.inner_text("td[data-metric=sent]") == "2"
        html_part = smtp.inbox.to("ben@example.com")[0].get_body(preferencelist=("html",))
        assert html_part is not None
        body = html_part.get_content()
        click = re.search(r"https?://[^\"']+/t/c/[^\"']+", body)
        pixel = re.search(r'<img src="([^"]+/t/o/[^"]+)"', body)
        assert pixel is not None
        assert click is not None
        browser_agent = (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/150 Safari/537.36"
        )

        opened = httpx.get(pixel.group(1), headers={"User-Agent": browser_agent})
        assert opened.status_code == 200 and opened.headers["content-type"] == "image/gif"
        page.reload()
        # Something opened it; whether a person did settles half a minute later.
        assert page.inner_text("td[data-metric=opened]").startswith("0")
        scenario.settle_everything_now(SITE_DIRECTORIES[0], site)
        page.reload()
        assert page.inner_text("td[data-metric=opened]").startswith("1")
        assert page.inner_text("td[data-metric=clicked]").startswith("0")
        hop = httpx.get(click.group(0), headers={"User-Agent": browser_agent})
        assert hop.status_code == 302 and hop.headers["location"] == "https://acme.com/launch"
        scenario.settle_everything_now(SITE_DIRECTORIES[0], site)
        page.reload()
        assert page.inner_text("td[data-metric=clicked]").startswith("1")
        assert page.inner_text("td[data-metric=opened]").startswith("1 50.0%")  # a person
        assert "by machines" not in page.inner_text("td[data-metric=opened]")
        assert page.locator("svg.chart").count() == 1
        # A time axis with labelled ticks, in the browser's zone (New York: EST).
        ticks = page.locator("svg.chart text.tick[text-anchor=middle]").all_text_contents()
        assert len(ticks) >= 2 and all(re.fullmatch(r"(\w{3} \d\d )?\d\d:\d\d", t) for t in ticks)
        assert "Opened by people" in page.text_content("details.chart-data")  # closed: hidden
        # Ben reports it as spam; his provider's feedback loop sends the report back.
        ben_id = str(smtp.inbox.to("ben@example.com")[0]["Message-ID"])
        complaint = arf_complaint("ben@example.com", ben_id)
        assert scenario.inbox_receives(SITE_DIRECTORIES[0], site, complaint, about=ben_id) == (
            "complaint"
        )
        page.reload()
        assert page.inner_text("td[data-metric=complained]").startswith("1 ")
        record_id = ben_id.strip("<>").split(".", 1)[0]
        page.goto(f"{page.url.split('?')[0]}?record={record_id}")
        assert "complaint: reported as abuse" in page.inner_text("li[data-event=complaint]")
        page.click("a[href='/settings']")
        suppressed = page.inner_text("tr[data-suppressed='ben@example.com']")
        assert "complained" in suppressed and "complaint (abuse)" in suppressed
        page.go_back()
        screenshot(page, "campaign", widths=README_WIDTHS)
        assert "completed" in page.inner_text("h1")  # both sent: nothing left to send
        page.click("text=Campaigns")
        row = page.inner_text("main")
        assert "Browser launch" in row and "2 / 2" in row
        screenshot(page, "campaigns", widths=README_WIDTHS)
        # On a phone nothing is wider than the screen: wide tables scroll in their card.
        page.set_viewport_size({"width": 390, "height": 844})
        for path in ("/campaigns", campaign_path, "/mailboxes", "/settings"):
            page.goto(site + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} is {width} px wide on a 390 px screen"
        page.goto(site + campaign_path)
        screenshot(page, "campaign-390")
        # The preview frame's policy refusing its image and tracking pixel on every showing
        # is the policy at work, not a problem of the page.
        frame_policy = 'directive: "img-src data:"'
        assert [problem for problem in page.problems if frame_policy not in problem] == []
    finally:
        smtp.stop()


def _link_mailbox(page: Any, email: str, port: int, *, daily_limit: int | None = None) -> None:
    """Fill and send the link form for a plain SMTP mailbox on loopback."""
    page.fill("#email", email)
    page.fill("#smtp_host", "127.0.0.1")
    page.fill("#smtp_port", str(port))
    page.select_option("#smtp_security", "plain")
    page.fill("#password", "smtp-pass")
    if daily_limit is not None:
        page.fill("#daily_limit", str(daily_limit))
    page.click("text=Link mailbox")


def _sign_up(page: Any, site: str, login: str) -> None:
    page.goto(site + "/signup")
    page.fill("#user_name", login.split("@")[0].title())
    page.fill("#login_id", login)
    page.fill("#password", "a long enough passphrase")
    page.click("button[type=submit]")
    page.wait_for_url("**/mailboxes")


def test_suppression_list_and_api_keys_pages(site: str, page: Any) -> None:
    _sign_up(page, site, "settings@example.com")
    page.click("text=Suppression & API keys")
    assert "No suppressed address yet" in page.inner_text("main")
    page.fill("#email", "nope")
    page.click("button:has-text('Suppress')")
    assert "not a valid email address" in page.inner_text("#email-error")
    assert page.input_value("#email") == "nope"
    page.fill("#email", "Gone@Example.com")
    with page.expect_navigation():
        page.click("button:has-text('Suppress')")
    assert page.locator("tr[data-suppressed='gone@example.com']").count() == 1
    # Undoing asks first: dismissed, nothing changes; accepted, it is done.
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("button:has-text('Allow again')")
    assert asked == ["Allow gone@example.com again? Your campaigns may then send to it."]
    assert page.locator("tr[data-suppressed='gone@example.com']").count() == 1
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("button:has-text('Allow again')")
    assert "No suppressed address yet" in page.inner_text("main")
    page.fill("#name", "deploy")
    page.click("button:has-text('Create key')")
    key = page.inner_text("#new-key")
    assert key.startswith("mr_")
    page.goto(site + "/settings")
    assert key not in page.content() and key[:11] in page.content()  # shown once only
    screenshot(page, "settings", widths=README_WIDTHS)
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    with page.expect_navigation():
        page.click("button:has-text('Revoke')")
    assert asked[-1].startswith("Revoke the key deploy?")
    assert "revoked" in page.inner_text("#api-keys")
    assert page.problems == []


def test_hostile_names_and_user_agents_render_as_text(site: str, page: Any, tmp_path: Path) -> None:
    import re
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    import httpx

    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    smtp = SmtpServer({"xss@acme.com": "smtp-pass"}).start()
    try:
        _sign_up(page, site, "xss@example.com")
        _link_mailbox(page, "xss@acme.com", smtp.port)
        page.goto(site + "/campaigns/new")
        page.fill("#campaign_name", "<img src=x onerror=alert('name')>")
        page.fill("#subject", "Hi {{first_name}}")
        page.select_option("#message_format", "html")
        page.fill("#message", '<p>See <a href="https://acme.com/x">x</a></p>')
        start = datetime.now(ZoneInfo("America/New_York")) - timedelta(minutes=5)
        page.fill("#start_time", start.strftime("%Y-%m-%dT%H:%M"))
        page.fill("#duration", "2")
        people = tmp_path / "people.csv"
        people.write_text("email,first_name\nzed@example.com,\"<script>alert('zed')</script>\"\n")
        page.set_input_files("#recipients", str(people))
        page.click("text=Create campaign")
        send_everything_now(site)
        html = smtp.inbox.to("zed@example.com")[0].get_body(preferencelist=("html",))
        assert html is not None
        link = re.search(r"https?://[^\"']+/t/c/[^\"']+", html.get_content())
        assert link is not None
        hostile = "<script>alert('ua')</script><img src=x onerror=alert('ua2')>"
        assert httpx.get(link.group(0), headers={"User-Agent": hostile}).status_code == 302
        page.reload()
        page.click("#recipients a:has-text('events')")
        assert hostile in page.inner_text("#events")  # shown as text
        assert "<script>alert('zed')</script>" in page.inner_text("#recipients")
        assert "onerror=alert('name')" in page.inner_text("h1")
        page.goto(site + "/campaigns")
        assert dialogs == [] and page.problems == []
    finally:
        smtp.stop()


def test_test_and_edit_a_mailbox(site: str, page: Any, dovecot: Any) -> None:
    """Test connection logs in to SMTP and IMAP and shows each answer on the mailbox's row;
    Edit changes settings, keeps the stored password when the field is left empty, puts an
    error next to its field and keeps what was typed."""
    smtp = SmtpServer({"ann@acme.com": "imap-password"}).start()
    try:
        page.goto(site + "/signup")
        page.fill("#user_name", "Edith Edit")
        page.fill("#login_id", "edith@example.com")
        page.fill("#password", "a long enough passphrase")
        page.click("button[type=submit]")
        page.wait_for_url("**/mailboxes")
        page.fill("#email", "ann@acme.com")
        page.fill("#smtp_host", "127.0.0.1")
        page.fill("#smtp_port", str(smtp.port))
        page.select_option("#smtp_security", "plain")
        page.fill("#password", "imap-password")
        page.fill("#imap_host", "127.0.0.1")
        page.fill("#imap_port", str(dovecot.port))
        page.select_option("#imap_security", "plain")
        page.click("text=Link mailbox")
        row = page.locator("tr[data-mailbox='ann@acme.com']")
        row.locator("text=Test").click()
        check = page.locator("tr[data-mailbox='ann@acme.com'] ul.check")
        assert check.inner_text().splitlines() == ["SMTP: works", "IMAP: works"]
        assert smtp.inbox.logins == ["ann@acme.com"] and smtp.inbox.messages == []

        page.locator("tr[data-mailbox='ann@acme.com'] >> text=Edit").click()
        assert page.input_value("#smtp_port") == str(smtp.port)
        assert page.input_value("#imap_security") == "plain"
        assert page.input_value("#password") == ""  # the stored one is never shown
        page.fill("#daily_limit", "0")
        page.fill("#display_name", "Ann at Acme")
        page.click("text=Save")
        assert "greater than or equal to 1" in page.inner_text("#daily_limit-error")
        assert page.input_value("#display_name") == "Ann at Acme"  # what was typed stays

        page.fill("#daily_limit", "120")
        page.click("text=Save")  # the password field is empty: the stored one stays
        page.wait_for_url("**/mailboxes")
        row = page.locator("tr[data-mailbox='ann@acme.com']")
        assert "120" in row.inner_text()
        row.locator("text=Test").click()
        assert "SMTP: works" in page.inner_text("tr[data-mailbox='ann@acme.com'] ul.check")

        page.locator("tr[data-mailbox='ann@acme.com'] >> text=Edit").click()
        page.fill("#password", "a wrong password")
        page.fill("#imap_host", "")
        page.click("text=Save")
        page.wait_for_url("**/mailboxes")
        page.locator("tr[data-mailbox='ann@acme.com'] >> text=Test").click()
        lines = page.inner_text("tr[data-mailbox='ann@acme.com'] ul.check").splitlines()
        assert len(lines) == 1 and lines[0].startswith("SMTP: ") and "535" in lines[0]
        screenshot(page, "mailbox-test")
        assert page.problems == []
    finally:
        smtp.stop()


def test_hundreds_of_recipients_are_paged_searched_and_their_replies_read(
    site: str, page: Any, tmp_path: Path
) -> None:
    smtp = SmtpServer({"pia@acme.com": "smtp-pass"}).start()
    try:
        _sign_up(page, site, "pia@example.com")
        # All 450 may go in a day: the test sends everything at once (send_everything_now),
        # and a mailbox never sends more in a day than its limit.
        _link_mailbox(page, "pia@acme.com", smtp.port, daily_limit=500)
        page.goto(site + "/campaigns/new")
        page.fill("#campaign_name", "Big list")
        page.fill("#subject", "Hello {{first_name}}")
        page.fill("#message", "Hi {{first_name}}, a note.")
        now = system_now().astimezone(ZoneInfo("America/New_York"))
        page.fill("#start_time", now.strftime("%Y-%m-%dT%H:%M"))
        page.fill("#duration", "240")
        people = tmp_path / "people.csv"
        people.write_text(
            "email,first_name\n" + "".join(f"p{n:03}@example.com,P{n}\n" for n in range(450))
        )
        page.set_input_files("#recipients", str(people))
        page.click("text=Create campaign")
        assert "450 accepted" in page.inner_text("p.notice")
        # A plain-text email carries no pixel: its open rate is not 0%, it is unmeasured.
        assert page.inner_text("#funnel td[data-metric=opened]") == "0 —"
        assert "a plain-text email carries no open pixel" in page.inner_text("#unmeasured")
        assert page.inner_text("#recipients-heading").startswith("Recipients (450)")
        assert page.locator("#recipients tbody tr").count() == 50
        # Pages 2 and 3: the next fifty, and the fifty after.
        page.click("#recipient-pages a:text-is('2')")
        assert page.inner_text("#recipient-pages").startswith("51–100 of 450")
        page.click("#recipient-pages a[rel=next]")
        assert page.inner_text("#recipient-pages").startswith("101–150 of 450")
        assert page.locator("#recipients tbody tr").count() == 50
        # A search keeps to the addresses that contain it.
        page.fill("#search", "P12")
        page.click("#recipient-filter button")
        shown = page.locator("#recipients tbody tr").evaluate_all(
            "rows => rows.map(row => row.dataset.recipient)"
        )
        assert shown == [f"p12{n}@example.com" for n in range(10)]
        assert page.inner_text("#recipients-heading") == "Recipients (10 shown of 450)"
        # p123 replies; its timeline opens beside its row, naming it, with the reply.
        send_everything_now(site)
        about = str(smtp.inbox.to("p123@example.com")[0]["Message-ID"])
        reply = (
            "From: P123 <p123@example.com>\r\nTo: pia@acme.com\r\nSubject: Re: Hello P123\r\n"
            f"Message-ID: <r123@example.com>\r\nIn-Reply-To: {about}\r\n\r\n"
            "Yes please, call me on Tuesday.\r\n\r\nOn Mon, Pia wrote:\r\n> Hi P123, a note.\r\n"
        ).encode()
        assert scenario.inbox_receives(SITE_DIRECTORIES[0], site, reply, about=about) == "reply"
        page.reload()
        row = page.locator("tr[data-recipient='p123@example.com']")
        assert row.locator("td").nth(6).inner_text() != ""  # Replied
        row.locator("a:text-is('events')").click()
        timeline = page.locator("tr.timeline")
        assert timeline.locator("h3").inner_text() == "What happened to p123@example.com"
        reply_line = timeline.locator("li[data-event=reply]")
        assert "from P123 <p123@example.com>: Re: Hello P123" in reply_line.inner_text()
        assert reply_line.locator("blockquote").inner_text() == "Yes please, call me on Tuesday."
        # The row above the timeline is the recipient's, and the page kept the search.
        assert page.input_value("#search") == "P12"
        screenshot(page, "campaign-recipients")
        export = page.locator("#export").get_attribute("href")
        assert export is not None and export.endswith("/export.csv")
        assert page.problems == []
    finally:
        smtp.stop()


# Each figure as the API (and `campaign show --json`) holds it: its count and rate fields.
API_FIELDS = {
    "sent": ("total_sent", None),
    "delivered": ("total_delivered", None),
    "opened": ("total_human_opened", "human_open_rate"),
    "clicked": ("total_human_clicks", "human_click_rate"),
    "replied": ("total_replied", "reply_rate"),
    "bounced": ("total_bounced", "bounce_rate"),
    "complained": ("total_complained", "complaint_rate"),
}


def test_every_number_is_the_same_on_the_list_the_page_the_api_and_the_cli(
    site: str, page: Any, tmp_path: Path
) -> None:
    import json
    import re

    import httpx

    smtp = SmtpServer({"nia@acme.com": "smtp-pass"}).start()
    try:
        _sign_up(page, site, "nia@example.com")
        _link_mailbox(page, "nia@acme.com", smtp.port)
        message = '<p>Hi {{first_name}}, <a href="https://acme.com/x">see</a></p>'
        fill_campaign_form(
            page, site, name="Same numbers", subject="Hello {{first_name}}", message=message,
            duration="24",
        )  # fmt: skip
        people = tmp_path / "people.csv"
        rows = "".join(f"n{i}@example.com,N{i}\n" for i in range(7))
        people.write_text("email,first_name\n" + rows)
        page.set_input_files("#recipients", str(people))
        page.click("text=Create campaign")
        campaign_url = page.url.split("?")[0]
        campaign_id = campaign_url.rsplit("/", 1)[1]
        send_everything_now(site)

        def html_of(address: str) -> str:
            part = smtp.inbox.to(address)[0].get_body(preferencelist=("html",))
            assert part is not None
            return str(part.get_content())

        person = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/150 Safari/537.36"
        for address, agent in (
            ("n0@example.com", person),
            ("n1@example.com", person),
            ("n2@example.com", "Mozilla/5.0 (Windows NT 5.1; rv:11.0) GoogleImageProxy"),
        ):
            pixel = re.search(r'<img src="([^"]+/t/o/[^"]+)"', html_of(address))
            assert pixel is not None
            httpx.get(pixel.group(1), headers={"User-Agent": agent})
        click = re.search(r"https?://[^\"']+/t/c/[^\"']+", html_of("n0@example.com"))
        assert click is not None
        httpx.get(click.group(0), headers={"User-Agent": person})
        scenario.settle_everything_now(SITE_DIRECTORIES[0], site)
        n3 = str(smtp.inbox.to("n3@example.com")[0]["Message-ID"])
        reply = (
            f"From: n3@example.com\r\nSubject: Re: Hello N3\r\nIn-Reply-To: {n3}\r\n\r\nYes.\r\n"
        ).encode()
        directory = SITE_DIRECTORIES[0]
        assert scenario.inbox_receives(directory, site, reply, about=n3) == "reply"
        n4 = str(smtp.inbox.to("n4@example.com")[0]["Message-ID"])
        bounce = exchange_bounce("n4@example.com")
        assert scenario.inbox_receives(directory, site, bounce, about=n4) == "hard_bounce"
        n5 = str(smtp.inbox.to("n5@example.com")[0]["Message-ID"])
        complaint = arf_complaint("n5@example.com", n5)
        assert scenario.inbox_receives(directory, site, complaint, about=n5) == "complaint"

        page.goto(campaign_url)
        # The site's public URL is this machine's: the links in real mail would not open.
        warning = page.inner_text("#tracking-warning")
        assert f"point at {site}: 127.0.0.1 is this machine's own address" in warning
        on_page = {}
        for key in API_FIELDS:
            cell = page.inner_text(f"#funnel td[data-metric={key}]").split()
            rate = next((part for part in cell[1:] if part.endswith("%")), None)
            on_page[key] = (int(cell[0]), float(rate.rstrip("%")) if rate else None)
        assert "+1 by machines" in page.inner_text("#funnel td[data-metric=opened]")
        page.goto(site + "/campaigns")
        row = page.locator("tr", has=page.locator(f"a[href='/campaigns/{campaign_id}']"))
        in_list = {
            key: float(row.locator(f"td[data-metric={key}]").inner_text().rstrip("%"))
            for key in ("opened", "clicked", "replied", "bounced")
        }
        api = page.request.get(f"{site}/api/v1/campaigns/{campaign_id}/metrics").json()
        shown = run_mailramp("campaign", "show", campaign_id, "--json", cwd=directory)
        assert shown.returncode == 0, shown.stderr
        cli = json.loads(shown.stdout)["metrics"]

        expected = {
            "sent": (7, None),
            "delivered": (6, None),
            "opened": (2, 33.33),
            "clicked": (1, 16.67),
            "replied": (1, 16.67),
            "bounced": (1, 14.29),
            "complained": (1, 16.67),
        }
        assert on_page == expected
        for key, (count_field, rate_field) in API_FIELDS.items():
            for source in (api, cli):
                rate = source[rate_field] if rate_field else None
                assert (source[count_field], rate) == expected[key], (key, source)
        assert in_list == {key: expected[key][1] for key in in_list}
    finally:
        smtp.stop()


def test_a_new_user_is_told_how_to_start_and_a_failing_mailbox_is_not_activated(
    site: str, page: Any
) -> None:
    _sign_up(page, site, "ola@example.com")
    first = page.inner_text("#first-steps")
    assert "Link your own mailbox" in first and "Create a campaign" in first
    page.click("#first-steps a[href='/campaigns/new']")
    assert "Link a mailbox first" in page.inner_text("main")
    page.goto(site + "/mailboxes")
    closed = free_port()  # nothing listens there
    _link_mailbox(page, "ola@acme.com", closed)
    row = page.locator("tr[data-mailbox='ola@acme.com']")
    row.locator("button:has-text('Pause')").click()
    assert "inactive" in page.inner_text("tr[data-mailbox='ola@acme.com']")
    page.locator("tr[data-mailbox='ola@acme.com'] button:has-text('Activate')").click()
    refused = page.inner_text("tr[data-mailbox='ola@acme.com'] [data-refused]")
    assert refused.startswith("not activated: the test failed (SMTP: ")
    assert str(closed) in refused
    assert "inactive" in page.inner_text("tr[data-mailbox='ola@acme.com']")
    assert page.locator("#first-steps").count() == 1  # still nothing that can send
    assert page.problems == []


def test_tracking_switched_off_on_the_form_reaches_the_email(site: str, page: Any) -> None:
    smtp = SmtpServer({"tia@acme.com": "smtp-pass"}).start()
    try:
        _sign_up(page, site, "tia@example.com")
        _link_mailbox(page, "tia@acme.com", smtp.port)
        message = '<p>See <a href="https://acme.com/x">this</a></p>'
        fill_campaign_form(page, site, name="Quiet", subject="Hello", message=message, duration="2")
        page.uncheck("#track_opens")
        page.uncheck("#track_clicks")
        page.click("text=Create campaign")
        campaign_id = page.url.split("?")[0].rsplit("/", 1)[1]
        api = page.request.get(f"{site}/api/v1/campaigns/{campaign_id}").json()
        assert (api["track_opens"], api["track_clicks"]) == (False, False)
        assert page.inner_text("#funnel td[data-metric=opened]") == "0 —"
        unmeasured = page.inner_text("#unmeasured")
        assert "open tracking is off" in unmeasured and "click tracking is off" in unmeasured
    finally:
        smtp.stop()


def test_a_person_is_stopped_from_their_timeline(site: str, page: Any, tmp_path: Path) -> None:
    smtp = SmtpServer({"sid@acme.com": "smtp-pass"}).start()
    try:
        _sign_up(page, site, "sid@example.com")
        _link_mailbox(page, "sid@acme.com", smtp.port)
        fill_campaign_form(
            page, site, name="Stops", subject="Hi", message="<p>Hi</p>", duration="2"
        )
        people = tmp_path / "people.csv"
        people.write_text("email\nann@example.com\nben@example.com\n")
        page.set_input_files("#recipients", str(people))
        page.click("text=Create campaign")
        page.locator("tr[data-recipient='ben@example.com'] a:has-text('events')").click()
        actions = page.inner_text("#recipient-actions")
        assert "Stop this person" in actions and "Mark replied" not in actions  # not sent yet
        asked: list[str] = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        page.click("#recipient-actions button:has-text('Stop this person')")
        assert asked == [
            "Stop emailing ben@example.com? Their emails not sent yet will not be sent."
        ]
        assert "ben@example.com stopped" in page.inner_text("p.notice")
        assert "stopped" in page.inner_text("tr[data-recipient='ben@example.com']")
        assert "stopped (by hand)" in page.inner_text("#events")
        assert "Stopped: nothing more is sent to ben@example.com" in page.inner_text(
            "#recipient-actions"
        )
        assert "pending" in page.inner_text("tr[data-recipient='ann@example.com']")

        # Ann's lead status, set from her timeline: counted on the campaign page.
        page.locator("tr[data-recipient='ann@example.com'] a:has-text('events')").click()
        page.select_option("#lead-status", label="Meeting booked")
        page.click("#lead-status-form button:has-text('Set')")
        assert "ann@example.com now has the lead status Meeting booked" in page.inner_text(
            "p.notice"
        )
        assert page.inner_text("#lead-statuses td[data-lead-status='Meeting booked']") == "1"
        assert "lead status: none → meeting_booked (dashboard)" in page.inner_text("#events")
        assert page.eval_on_selector("#lead-status", "e => e.value") == "meeting_booked"
        assert page.problems == []
    finally:
        smtp.stop()


def test_a_campaign_sent_from_two_mailboxes_chosen_on_the_form(
    site: str, page: Any, tmp_path: Path
) -> None:
    smtp = SmtpServer({"uma@acme.com": "smtp-pass", "uma@acme-mail.com": "smtp-pass"}).start()
    try:
        _sign_up(page, site, "uma@example.com")
        _link_mailbox(page, "uma@acme.com", smtp.port)
        _link_mailbox(page, "uma@acme-mail.com", smtp.port)
        fill_campaign_form(page, site, name="Two", subject="Hi", message="<p>Hi</p>", duration="2")
        also = page.inner_text("#also-from")
        assert "uma@acme.com" in also and "uma@acme-mail.com" in also
        page.check("#also-from input[type=checkbox] >> nth=1")
        people = tmp_path / "people.csv"
        people.write_text("email\n" + "".join(f"p{n}@example.com\n" for n in range(4)))
        page.set_input_files("#recipients", str(people))
        page.click("text=Create campaign")
        assert "4 accepted" in page.inner_text("p.notice")
        assert page.inner_text("#senders").startswith("From uma@acme.com, uma@acme-mail.com")
        days = page.inner_text("#plan-days table")
        assert "uma@acme.com (≤ 50 a day)" in days and "uma@acme-mail.com (≤ 50 a day)" in days
        # A 2-hour window may span two days (started late in the evening): count them all.
        rows = page.locator("#plan-days tbody tr")
        assert all(row.locator("td").count() == 2 for row in rows.all())
        cells = page.locator("#plan-days tbody td").all_inner_texts()
        assert sum(int(cell) for cell in cells) == 4
        send_everything_now(site)
        senders = {r.message["To"]: r.sender for r in smtp.inbox.messages}
        assert sorted(senders) == [f"p{n}@example.com" for n in range(4)]
        assert set(senders.values()) == {"uma@acme.com", "uma@acme-mail.com"}
        assert page.problems == []
    finally:
        smtp.stop()


def test_an_ab_test_made_on_the_form_shows_each_variants_figures(
    site: str, page: Any, tmp_path: Path
) -> None:
    smtp = SmtpServer({"ali@acme.com": "smtp-pass"}).start()
    try:
        _sign_up(page, site, "ali@example.com")
        _link_mailbox(page, "ali@acme.com", smtp.port)
        fill_campaign_form(page, site, name="AB", subject="Hi", message="<p>Hi</p>", duration="2")
        page.click("#ab-test summary")
        page.fill("#variant_subject_1", "Hey {{first name}}")
        page.fill("#variant_message_1", "<p>Hey</p>")
        people = tmp_path / "people.csv"
        people.write_text("email\n" + "".join(f"p{n}@example.com\n" for n in range(4)))
        page.set_input_files("#recipients", str(people))
        page.click("text=Create campaign")
        error = page.inner_text("#variants-error")
        assert error.startswith("step 1, variant B, subject, line 1, column 5:")
        assert page.input_value("#variant_message_1") == "<p>Hey</p>"  # what was typed stays
        page.fill("#variant_subject_1", "Hey {{first_name|there}}")
        page.set_input_files("#recipients", str(people))
        page.click("text=Create campaign")
        assert "4 accepted" in page.inner_text("p.notice")
        rows = page.locator("#variants tr[data-variant]")
        assert rows.all_inner_texts()[0].startswith("A Hi")
        assert rows.all_inner_texts()[1].startswith("B Hey {{first_name|there}}")
        send_everything_now(site)
        page.reload()
        sent = page.locator("#variants td[data-metric=sent]").all_inner_texts()
        assert sent == ["2", "2"]
        subjects = sorted(r.message["Subject"] for r in smtp.inbox.messages)
        assert subjects == ["Hey there", "Hey there", "Hi", "Hi"]
        assert page.problems == []
    finally:
        smtp.stop()


def test_a_three_step_campaign_with_variants_from_two_mailboxes_made_on_the_form(
    site: str, page: Any, tmp_path: Path
) -> None:
    smtp = SmtpServer({"sam@acme.com": "smtp-pass", "sam@acme-mail.com": "smtp-pass"}).start()
    try:
        _sign_up(page, site, "sam@example.com")
        _link_mailbox(page, "sam@acme.com", smtp.port)
        _link_mailbox(page, "sam@acme-mail.com", smtp.port)
        fill_campaign_form(page, site, name="Seq", subject="Hi", message="<p>Hi</p>", duration="48")
        page.check("#also-from input[type=checkbox] >> nth=1")
        page.click("#follow-ups summary")
        page.fill("#step_2_days", "0")
        page.fill("#step_2_hours", "1")
        page.fill("#step_2_message", "<p>Any thoughts, {{first_name}?</p>")
        page.click("#step-2 details summary")
        page.fill("#step_2_variant_message", "<p>Still interested?</p>")
        page.fill("#step_3_days", "0")
        page.fill("#step_3_hours", "2")
        page.fill("#step_3_subject", "One last idea")
        page.fill("#step_3_message", "<p>Last one.</p>")
        people = tmp_path / "people.csv"
        people.write_text("email\n" + "".join(f"p{n}@example.com\n" for n in range(4)))
        page.set_input_files("#recipients", str(people))
        page.click("text=Create campaign")
        # A malformed merge tag names the step, the part and where it is; nothing is lost.
        error = page.inner_text("#campaign_steps-error")
        assert error.startswith("step 2, variant A, message, line 1, column 18:"), error
        assert page.input_value("#step_3_subject") == "One last idea"
        page.fill("#step_2_message", "<p>Any thoughts, {{first_name|there}}?</p>")
        page.set_input_files("#recipients", str(people))
        page.click("text=Create campaign")
        assert "4 accepted" in page.inner_text("p.notice")
        assert page.locator("#sequence-steps li").all_inner_texts() == [
            "First email: Hi",
            "1 hour later: a reply in the thread (2 variants)",
            "2 hours later: One last idea",
        ]
        # The plan per day and mailbox counts first emails and follow-ups apart.
        days = page.inner_text("#plan-days table")
        assert "first, " in days and "follow-up" in days
        # Steps change before or while it runs: a fourth one is added on the campaign page.
        page.click("#steps-editor summary")
        assert page.input_value("#step_3_subject") == "One last idea"
        page.fill("#step_new_days", "0")
        page.fill("#step_new_hours", "1")
        page.fill("#step_new_message", "<p>A fourth note.</p>")
        page.click("#save-steps")
        assert "the sequence has 4 step(s)" in page.inner_text("p.notice")
        assert page.locator("#sequence-steps li").count() == 4
        # The preview shows any step of a person's sequence, as it will go: in the thread.
        page.select_option("#preview-step", label="2")
        page.click("#preview button:has-text('Show')")
        assert page.inner_text("#preview h2").endswith(", step 2")
        assert "Re: Hi" in page.inner_text("#preview-headers")
        send_everything_now(site)
        page.reload()
        assert page.locator("#steps tr[data-step]").count() == 4
        sent = page.locator("#steps tr[data-step] td[data-metric=sent]").all_inner_texts()
        assert [cell.split()[0] for cell in sent] == ["4", "4", "4", "4"]
        variants = page.locator("#steps tr[data-step-variant] td[data-metric=sent]")
        assert [cell.split()[0] for cell in variants.all_inner_texts()] == ["2", "2"]
        mail: dict[str, list[Any]] = {}
        for received in smtp.inbox.messages:
            mail.setdefault(received.message["To"], []).append(received)
        assert sorted(mail) == [f"p{n}@example.com" for n in range(4)]
        for first, second, third, fourth in mail.values():
            assert (first.message["Subject"], second.message["Subject"]) == ("Hi", "Re: Hi")
            assert second.message["In-Reply-To"] == first.message["Message-ID"]
            assert third.message["Subject"] == "One last idea"
            assert fourth.message["Subject"] == "Re: One last idea"  # in the third's thread
            assert fourth.message["In-Reply-To"] == third.message["Message-ID"]
            assert first.sender == second.sender == third.sender == fourth.sender
        assert {received[0].sender for received in mail.values()} == {
            "sam@acme.com",
            "sam@acme-mail.com",
        }
        # A person's timeline shows every step.
        page.click("tr[data-recipient='p0@example.com'] a:has-text('events')")
        timeline = page.inner_text("#events")
        for step in (1, 2, 3, 4):
            assert f"step {step}: queued" in timeline and f"step {step}: sent" in timeline
        screenshot(page, "campaign-sequence")
        assert page.problems == []
    finally:
        smtp.stop()


def test_a_webhook_endpoint_from_the_dashboard(site: str, page: Any) -> None:
    receiver = WebhookReceiver().start()
    try:
        _sign_up(page, site, "wes@example.com")
        page.goto(site + "/webhooks")
        assert "current" in (page.get_attribute("nav >> text=Webhooks", "class") or "")
        assert "No endpoint yet." in page.inner_text("main")
        page.fill("#url", receiver.url)
        page.fill("#description", "Our CRM")
        page.check("#add-webhook input[value=reply]")
        page.check("#add-webhook input[value=lead_status]")
        page.click("text=Add endpoint")
        secret = page.inner_text("#new-secret code")
        assert secret.startswith("whsec_")
        card = page.locator(f"[data-endpoint='{receiver.url}']")
        assert "Our CRM · reply, lead_status · enabled" in card.inner_text()

        card.locator("button:has-text('Send a test')").click()
        assert "test sent: HTTP 200 in" in page.inner_text("p.notice")
        (arrived,) = receiver.take()
        assert Webhook(secret).verify(arrived.body, arrived.headers)["type"] == "webhook.test"
        row = card.locator("tr[data-type='webhook.test']")
        assert "delivered" in row.inner_text() and "HTTP 200" in row.inner_text()
        row.locator("button:has-text('Send again')").click()
        assert "queued again" in page.inner_text("p.notice")
        assert "pending" in card.locator("tr[data-type='webhook.test']").inner_text()

        card.locator("button:has-text('Disable')").click()
        assert "Disabled" in card.inner_text() and "disabled by its owner" in card.inner_text()
        # A secret is never on the page again once shown.
        page.reload()
        assert secret not in page.content()
        page.fill("#url", "ftp://example.com/hooks")
        page.click("text=Add endpoint")
        assert "is not an http:// or https:// URL" in page.inner_text("#add-webhook")
        assert page.problems == []
    finally:
        receiver.stop()


HUMAN = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari"
HOSTILE_REPLY = (
    "From: Mallory <mallory@example.com>\r\nTo: ivy@acme.com\r\nSubject: Re: Hi\r\n"
    "Message-ID: <mallory-1@example.com>\r\nIn-Reply-To: {ours}\r\n"
    'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="A"\r\n\r\n'
    "--A\r\nContent-Type: text/plain\r\n\r\nInterested! <script>alert('text')</script>\r\n"
    "--A\r\nContent-Type: text/html\r\n\r\n"
    "<p>Interested!</p><script>fetch('TRACKER/script')</script>"
    "<script src='TRACKER/script.js'></script>"
    "<img src='TRACKER/pixel.gif' width=1 height=1><img src='cid:logo@mallory'>"
    "<link rel='stylesheet' href='TRACKER/style.css'><style>@import 'TRACKER/import.css';</style>"
    "<div style='background:url(TRACKER/bg.png)'>signature</div>"
    "<iframe src='TRACKER/frame'></iframe><object data='TRACKER/object'></object>"
    "<video poster='TRACKER/poster.png'></video><svg><image href='TRACKER/svg.png'/></svg>"
    "<a href='TRACKER/link' ping='TRACKER/ping'>a link</a>"
    "<form action='TRACKER/form'><input name=q></form>"
    "<img src=x onerror=\"fetch('TRACKER/onerror')\">\r\n--A--\r\n"
)


def test_a_hostile_reply_loads_nothing_and_is_answered_in_its_thread(
    site: str, page: Any, tmp_path: Path
) -> None:
    tracker = WebhookReceiver().start()  # any request reaching it is a leak
    smtp = SmtpServer({"ivy@acme.com": "smtp-pass"}).start()
    try:
        _sign_up(page, site, "ivy@example.com")
        _link_mailbox(page, "ivy@acme.com", smtp.port)
        fill_campaign_form(
            page, site, name="Hostile", subject="Hi", message="<p>Hi</p>", duration="2"
        )
        people = tmp_path / "people.csv"
        people.write_text("email\nmallory@example.com\n")
        page.set_input_files("#recipients", str(people))
        page.click("text=Create campaign")
        campaign_id = page.url.split("?")[0].rsplit("/", 1)[1]
        user = page.request.get(f"{site}/api/v1/me").json()
        (mailbox,) = page.request.get(f"{site}/api/v1/mailboxes").json()
        settings = Settings(
            database_url=f"sqlite:///{SITE_DIRECTORIES[0] / 'mailramp.db'}",
            encryption_key_file=SITE_DIRECTORIES[0] / "mailramp.key",
        )
        origin = f"http://127.0.0.1:{tracker.port}"
        reply = HOSTILE_REPLY.replace("TRACKER", origin)
        arrived = reply_arrives(settings, user["_id"], mailbox["_id"], campaign_id, reply)
        assert run_blocking(arrived) == "reply"

        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(site + "/inbox")
        row = page.locator("tr[data-thread='mallory@example.com']")
        assert "1 unread" in row.inner_text() and "Interested!" in row.inner_text()
        record_id = (row.locator("a").get_attribute("href") or "").rsplit("/", 1)[1]
        page.goto(site + f"/inbox/{campaign_id}/{record_id}")
        message = page.locator("li.message").first
        assert "Interested! <script>alert('text')</script>" in message.inner_text()  # as text
        message.locator("summary:has-text('As formatted')").click()
        frame = page.frame_locator("iframe.reply-frame")
        assert frame.locator("p").inner_text() == "Interested!"
        link = frame.locator("a")
        assert link.inner_text() == "a link" and link.get_attribute("ping") is None
        assert link.get_attribute("rel") == "noopener noreferrer nofollow"
        page.wait_for_timeout(500)  # time for anything that would load to try
        assert tracker.take() == []  # nothing reached the tracker
        assert all(url.startswith(site) for url in requested), requested
        page.select_option("#lead-status", label="Interested")
        page.click("#thread-lead-status button")
        assert "lead status: Interested" in page.inner_text("p.notice")
        page.goto(site + "/inbox?lead_status=interested")
        assert page.locator("tr[data-thread='mallory@example.com']").count() == 1

        # Answer from the thread: it arrives in the person's mailbox, in the thread.
        page.goto(site + f"/inbox/{campaign_id}/{record_id}")
        page.fill("#answer-text", "Glad to hear it. Does Tuesday work?")
        page.check("#answer-form input[name=track_opens]")
        page.click("#answer-form button")
        assert "answer sent" in page.inner_text("p.notice")
        (answer,) = [
            m.message for m in smtp.inbox.messages if m.recipients == ["mallory@example.com"]
        ]
        assert answer["In-Reply-To"] == "<mallory-1@example.com>"
        assert answer["References"].split()[-1] == "<mallory-1@example.com>"
        assert answer["Subject"] == "Re: Hi"
        assert "Does Tuesday work?" in answer.get_body(preferencelist=("plain",)).get_content()
        assert "Your answer: sent · not opened yet" in page.inner_text("li.message.out")
        # Asked for: a pixel of the answer's own; loading it shows on the answer.
        html = answer.get_body(preferencelist=("html",)).get_content()
        (token,) = re.findall(r"/t/a/([\w-]+)", html)
        pixel = page.request.get(site + f"/t/a/{token}", headers={"User-Agent": HUMAN})
        assert pixel.status == 200 and pixel.headers["content-type"] == "image/gif"
        page.reload()
        assert "Your answer: sent · opened" in page.inner_text("li.message.out")
        later = (
            "From: Mallory <mallory@example.com>\r\nTo: ivy@acme.com\r\nSubject: Re: Hi\r\n"
            f"Message-ID: <mallory-2@example.com>\r\nIn-Reply-To: {answer['Message-ID']}\r\n"
            "\r\nTuesday works.\r\n"
        ).encode()
        joined = message_arrives(settings, user["_id"], mailbox["_id"], later)
        assert run_blocking(joined) == "reply"
        page.goto(site + f"/inbox/{campaign_id}/{record_id}")
        assert [m.get_attribute("class") for m in page.locator("li.message").all()] == [
            "message in",
            "message out",
            "message in",
        ]
        assert "Tuesday works." in page.locator("li.message").last.inner_text()
        assert page.problems == []
    finally:
        smtp.stop()
        tracker.stop()
