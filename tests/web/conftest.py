"""Fixtures of the web tests: a browser page that collects what went wrong on it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving


@contextmanager
def api_site(directory: Path) -> Iterator[str]:
    """`mailramp serve` on SQLite in `directory`, without its worker: its base URL."""
    port = free_port()
    with serving(port, cwd=directory, env=clean_environment(MAILRAMP_RUN_WORKER="false")):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(
        timezone_id="America/New_York", viewport={"width": 1200, "height": 800}
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


SCREENSHOT_DIRECTORY = Path(
    os.environ.get("MAILRAMP_SCREENSHOT_DIR") or Path(__file__).parents[2] / "build" / "screenshots"
)


# The widths the README shows each page at: a laptop and a phone.
README_WIDTHS = (1366, 390)


def screenshot(page: Any, name: str, *, widths: tuple[int, ...] = ()) -> Path:
    """Save a full-page screenshot as build/screenshots/NAME.png (MAILRAMP_SCREENSHOT_DIR
    elsewhere), and one as NAME-WIDTH.png at each of `widths` (the page reloaded at that
    width, then put back); `scripts/screenshots` copies them into docs/images."""
    SCREENSHOT_DIRECTORY.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIRECTORY / f"{name}.png"
    size = page.viewport_size
    _whole_page(page, path, size["width"])
    if widths:
        for width in widths:
            page.set_viewport_size({"width": width, "height": 900})
            page.reload()
            _whole_page(page, SCREENSHOT_DIRECTORY / f"{name}-{width}.png", width)
        page.reload()
    page.set_viewport_size(size)
    return path


def _whole_page(page: Any, path: Path, width: int) -> None:
    """The whole page at `width`, taken as one tall viewport: Chromium's full-page capture
    leaves a sandboxed frame (the email preview) blank, a viewport capture draws it."""
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_timeout(200)  # frames repaint at the new size
    page.screenshot(path=str(path))
    assert path.stat().st_size > 5_000, f"{path} looks empty"


def fill_campaign_form(
    page: Any, site: str, *, name: str, subject: str, message: str, duration: str
) -> None:
    """Open the new-campaign form and fill an HTML campaign starting now (New York time)."""
    from tests.support.clock import system_now

    page.goto(site + "/campaigns/new")
    page.fill("#campaign_name", name)
    page.fill("#subject", subject)
    page.select_option("#message_format", "html")
    page.fill("#message", message)
    now = system_now().astimezone(ZoneInfo("America/New_York"))
    page.fill("#start_time", now.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#duration", duration)


def cut_off_the_internet(page: Any, site: str) -> list[str]:
    """From now on the page reaches only `site`: any other request that gets as far as the
    network is aborted and listed in the list returned."""
    reached: list[str] = []

    def only_this_site(route: Any) -> None:
        if route.request.url.startswith(site):
            route.continue_()
        else:
            reached.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_site)
    return reached
