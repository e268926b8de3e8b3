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


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as build/screenshots/NAME.png (MAILRAMP_SCREENSHOT_DIR
    elsewhere); `scripts/screenshots` copies them into docs/images for the README."""
    SCREENSHOT_DIRECTORY.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIRECTORY / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000, f"{path} looks empty"
    return path
