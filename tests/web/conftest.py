"""Fixtures of the web tests: a browser page that collects what went wrong on it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


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
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000, f"{path} looks empty"
    if widths:
        size = page.viewport_size
        for width in widths:
            page.set_viewport_size({"width": width, "height": 900})
            page.reload()
            wide = SCREENSHOT_DIRECTORY / f"{name}-{width}.png"
            page.screenshot(path=str(wide), full_page=True)
            assert wide.stat().st_size > 5_000, f"{wide} looks empty"
        page.set_viewport_size(size)
        page.reload()
    return path
