"""A new user's first hour, played in Chromium on a fresh instance: the demo runs, the
dashboard points to linking one's own mailbox, one is linked (a local SMTP server and
Dovecot) and tested, a campaign of 450 recipients is created through the form, its preview
is checked (nothing in it runs, nothing leaves for the internet), recipients' pages 2 and 3
are reached, a recipient's timeline opens with their reply, and the chart has a time axis
with labelled ticks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.support import scenario
from tests.support.clock import system_now
from tests.support.demo_run import DemoRuns
from tests.support.dovecot import Dovecot
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving
from tests.support.smtp import SmtpServer
from tests.web.conftest import cut_off_the_internet, screenshot

MAILBOX = "ann@acme.com"  # Dovecot's account (tests/conftest.py)
PASSWORD = "imap-password"


def test_a_new_user_goes_from_the_demo_to_their_own_campaign(
    page: Any, dovecot: Dovecot, demo_runs: DemoRuns, tmp_path: Path
) -> None:
    # The instance a first demo left (the session's run, copied: tests/support/demo_run.py).
    instance = demo_runs.first.copy(tmp_path / "instance")
    result = demo_runs.first.result
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false",
        MAILRAMP_ALLOW_PRIVATE_HOSTS="true",
        MAILRAMP_PUBLIC_BASE_URL=site,
    )
    smtp = SmtpServer({MAILBOX: PASSWORD}).start()
    with serving(port, cwd=instance, env=environment):
        try:
            # Signed in as the demo user: the demo's campaign is there, and the page says
            # how to send one's own.
            page.goto(site + "/signin")
            page.fill("#login_id", result["login"])
            page.fill("#password", result["password"])
            page.click("button[type=submit]")
            page.goto(site + "/campaigns")
            assert page.locator("tbody tr").count() == 1  # the demo's campaign
            assert "Link your own mailbox" in page.inner_text("#first-steps")
            page.click("#first-steps a[href='/mailboxes#link-smtp']")
            demo_row = page.inner_text("tr[data-mailbox='outreach@mailramp-demo.example']")
            assert "demo" in demo_row and "inactive" in demo_row
            screenshot(page, "first-hour-mailboxes")

            # Link one's own mailbox: SMTP to send, Dovecot's IMAP for replies; test it.
            page.fill("#email", MAILBOX)
            page.fill("#smtp_host", "127.0.0.1")
            page.fill("#smtp_port", str(smtp.port))
            page.select_option("#smtp_security", "plain")
            page.fill("#password", PASSWORD)
            page.fill("#daily_limit", "500")  # the 450 people below can all go in one day
            page.fill("#imap_host", "127.0.0.1")
            page.fill("#imap_port", str(dovecot.port))
            page.select_option("#imap_security", "plain")
            page.click("text=Link mailbox")
            page.locator(f"tr[data-mailbox='{MAILBOX}'] button:has-text('Test')").click()
            checked = page.inner_text(f"tr[data-mailbox='{MAILBOX}'] ul.check")
            assert "SMTP: works" in checked and "IMAP: works" in checked
            assert page.locator("#first-steps").count() == 0  # a real mailbox can send now

            # A campaign of 450 through the form, its email with a script and a remote image.
            page.goto(site + "/campaigns/new")
            page.fill("#campaign_name", "My first campaign")
            page.select_option("#mailbox_id", label=MAILBOX)
            page.fill("#subject", "Hello {{first_name}}")
            page.select_option("#message_format", "html")
            page.fill(
                "#message",
                '<p>Hi {{first_name}}, <a href="https://acme.com/offer">our offer</a>.</p>'
                '<img src="https://cdn.example.net/banner.png" alt="banner">'
                "<script>document.body.dataset.ran = 'yes'</script>",
            )
            now = system_now().astimezone(ZoneInfo("America/New_York"))
            page.fill("#start_time", now.strftime("%Y-%m-%dT%H:%M"))
            page.fill("#duration", "240")  # 450 at the mailbox's 50 a day
            people = instance / "people.csv"
            rows = "".join(f"lead{n:03}@example.com,Lead{n}\n" for n in range(450))
            people.write_text("email,first_name\n" + rows)
            page.set_input_files("#recipients", str(people))
            page.click("text=Create campaign")
            assert "450 accepted" in page.inner_text("p.notice")
            campaign_url = page.url.split("?")[0]

            # The preview: as the recipient sees it, nothing in it runs or leaves.
            reached = cut_off_the_internet(page, site)
            page.reload()
            frame = page.frame_locator("#preview-frame").locator("body")
            assert "Hi Lead0, our offer." in frame.inner_text()
            assert frame.get_attribute("data-ran") is None
            assert "Subject\tHello Lead0" in page.inner_text("#preview-headers")
            assert reached == []
            page.unroute("**/*")

            # Pages 2 and 3 of the recipients.
            page.click("#recipient-pages a:text-is('2')")
            assert page.inner_text("#recipient-pages").startswith("51–100 of 450")
            page.click("#recipient-pages a[rel=next]")
            assert page.inner_text("#recipient-pages").startswith("101–150 of 450")

            # It goes out; lead123 replies; their timeline opens beside their row.
            scenario.send_everything_now(instance, site)
            sent = smtp.inbox.to("lead123@example.com")[0]
            reply = (
                f"From: Lead123 <lead123@example.com>\r\nTo: {MAILBOX}\r\n"
                f"Subject: Re: Hello Lead123\r\nIn-Reply-To: {sent['Message-ID']}\r\n\r\n"
                "Interested. Call me.\r\n\r\nOn Sat, Ann wrote:\r\n> Hi Lead123\r\n"
            ).encode()
            about = str(sent["Message-ID"])
            assert scenario.inbox_receives(instance, site, reply, about=about) == "reply"
            page.goto(campaign_url + "?search=lead123")
            page.click("tr[data-recipient='lead123@example.com'] a:text-is('events')")
            timeline = page.locator("tr.timeline")
            assert timeline.locator("h3").inner_text() == "What happened to lead123@example.com"
            assert timeline.locator("blockquote").inner_text() == "Interested. Call me."

            # The chart: a time axis with labelled ticks in the browser's zone.
            ticks = page.locator("svg.chart text.tick[text-anchor=middle]").all_text_contents()
            assert len(ticks) >= 2
            assert all(re.fullmatch(r"(\w{3} \d\d )?\d\d:\d\d", tick) for tick in ticks)
            screenshot(page, "first-hour-campaign")
            # The only policy refusals were the preview frame's (its image, by design).
            frame_policy = 'directive: "img-src data:"'
            assert [p for p in page.problems if frame_policy not in p] == []
        finally:
            smtp.stop()
