"""The dashboard in a real browser (Playwright driving Debian's Chromium) against
`mailramp serve` on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving
from tests.support.smtp import SmtpServer

SCREENSHOTS = Path(__file__).parents[2] / "docs" / "images"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false", MAILRAMP_ALLOW_PRIVATE_HOSTS="true"
    )
    with serving(port, cwd=tmp_path_factory.mktemp("dashboard"), env=environment):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(
        timezone_id="Europe/Lisbon", viewport={"width": 1200, "height": 800}
    )
    page = context.new_page()
    # Script errors and Content-Security-Policy violations the page reported. (Error
    # statuses of form posts, such as a 422, are expected and not collected.)
    page.problems = []
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and page.problems.append(message.text)
        ),
    )
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    try:
        yield page
    finally:
        context.close()


def test_sign_up_link_a_mailbox_and_see_it(site: str, page: Any, tmp_path: Path) -> None:
    smtp = SmtpServer({"ann@acme.com": "smtp-pass"}).start()
    try:
        response = page.goto(site + "/")
        assert page.url.endswith("/signin")
        assert response is not None
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        page.click("text=Create an account")
        page.fill("#user_name", "Ann Example")
        page.fill("#login_id", "ann@example.com")
        page.fill("#password", "a long enough passphrase")
        page.click("button[type=submit]")
        page.wait_for_url("**/mailboxes")
        assert "No mailbox yet" in page.inner_text("main")
        page.screenshot(path=str(tmp_path / "mailboxes-empty.png"), full_page=True)

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
        page.screenshot(path=str(tmp_path / "mailboxes.png"), full_page=True)

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
