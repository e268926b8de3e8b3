"""The mailbox health page in Chromium, on a real `mailramp serve`: its figures over 7 and
30 days, the chart of its last days (emails sent against the daily limit, warm-up inbox
placement) with the same numbers in a table, its ramp, and a brake with its one-click
resume; the API's `GET /mailboxes/{id}/health` says the same."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailramp.config import Settings
from mailramp.kit.ids import new_object_id
from mailramp.mailboxes.models import BrakeKind, MailboxDay
from mailramp.runtime import open_runtime
from tests.support.loops import run_blocking
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving

PASSWORD = "a long enough passphrase"
# (campaign emails, bounced, complained, replied, warm-up sent, inbox, spam) per day, the
# oldest first, ending yesterday.
DAYS = [
    (10, 0, 0, 1, 2, 2, 0),
    (12, 1, 0, 0, 4, 3, 1),
    (14, 0, 0, 2, 6, 5, 1),
    (16, 0, 0, 1, 8, 8, 0),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    directory = tmp_path_factory.mktemp("health")
    port = free_port()
    environment = clean_environment(MAILRAMP_RUN_WORKER="false", MAILRAMP_RAMP_NEW_MAILBOXES="true")
    with serving(port, cwd=directory, env=environment):
        yield f"http://127.0.0.1:{port}", directory


def _settings(directory: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{directory / 'mailramp.db'}",
        encryption_key_file=directory / "mailramp.key",
    )


async def _history_and_brake(directory: Path, login: str) -> str:
    """Arrangement: four days of history before today (as the worker's roll-up writes
    them) and a complaint brake on the user's mailbox; returns its id."""
    runtime = await open_runtime(_settings(directory))
    try:
        user = await runtime.accounts.get_user_by_login_id(login)
        (mailbox,) = await runtime.mailboxes.list_mailboxes(user.user_id)
        today = datetime.now(UTC).date()
        rows = []
        for back, (sent, bounced, complained, replied, warm, inbox, spam) in zip(
            range(len(DAYS), 0, -1), DAYS, strict=True
        ):
            rows.append(
                MailboxDay.model_validate(
                    {
                        "_id": new_object_id(),
                        "mailbox_id": mailbox.id,
                        "user_id": user.user_id,
                        "day": (today - timedelta(days=back)).isoformat(),
                        "campaign_sent": sent,
                        "bounced": bounced,
                        "complained": complained,
                        "replied": replied,
                        "warmup_sent": warm,
                        "warmup_inbox": inbox,
                        "warmup_spam": spam,
                        "daily_limit": sent,
                        "updated_at": datetime.now(UTC),
                    }
                )
            )
        await runtime.store.put_mailbox_days(rows)
        await runtime.mailboxes.brake(mailbox, BrakeKind.COMPLAINTS, "a complaint, in a test")
        return mailbox.id
    finally:
        await runtime.close()


def test_the_health_page_shows_figures_chart_ramp_and_brake(
    site: tuple[str, Path], page: Any
) -> None:
    base, directory = site
    page.goto(base + "/signup")
    page.fill("#user_name", "Hal")
    page.fill("#login_id", "hal@acme.example")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/mailboxes")
    page.fill("#email", "hal@acme.example")
    page.fill("#smtp_host", "smtp.acme.example")
    page.fill("#password", "smtp-pass")
    page.fill("#daily_limit", "30")
    assert not page.is_checked("#already_warm")  # new mailboxes ramp up on this server
    page.click("text=Link mailbox")
    mailbox_id = run_blocking(_history_and_brake(directory, "hal@acme.example"))

    page.goto(f"{base}/mailboxes/{mailbox_id}/health")

    # Placement over 7 days: 18 of the 20 warm-up emails found reached the inbox; healthy
    # is above 90 %.
    assert page.inner_text("#health-score").startswith("90 %")
    assert "at risk: healthy is above 90 %" in page.inner_text("#health-score")
    figures = {}
    for row in page.query_selector_all("#health-figures tbody tr"):
        cells = [cell.inner_text() for cell in row.query_selector_all("td")]
        figures[row.query_selector("th").inner_text()] = cells
    assert figures["Campaign emails sent"] == ["52", "52"]
    assert figures["Bounce rate"] == ["1.92 %", "1.92 %"]
    assert figures["Reply rate"] == ["7.69 %", "7.69 %"]
    assert figures["Warm-up inbox placement"] == ["90 %", "90 %"]
    # The chart: one placement bar per day with warm-up emails found, and the numbers.
    assert len(page.query_selector_all("#health-chart rect[data-placement]")) == 4
    page.click("#health-caption")
    table = page.inner_text("#health-history details table")
    assert "75 %" in table and "83.33 %" in table
    # Four good days: today 10 + 2 * 4 = 18, then 20 … 30.
    assert page.inner_text("#ramp-today").startswith(
        "Ramping up: 18 emails today, then 20 → 22 → 24 → 26 → 28 → 30"
    )
    assert "a complaint, in a test" in page.inner_text("#brake")

    # The API says the same (the page's session cookie signs the request in).
    health = page.request.get(f"{base}/api/v1/mailboxes/{mailbox_id}/health").json()
    assert (health["score"], health["healthy"], health["limit_today"]) == (90.0, False, 18)
    assert [day["campaign_sent"] for day in health["history"]] == [10, 12, 14, 16]
    assert health["week"]["bounce_rate"] == 1.92
    assert health["mailbox"]["brake_reason"] == "a complaint, in a test"
    # And Prometheus, per mailbox.
    metrics = page.request.get(f"{base}/metrics").text()
    label = f'{{mailbox_id="{mailbox_id}"}}'
    assert f"mailramp_mailbox_daily_limit{label} 18.0" in metrics
    assert f"mailramp_mailbox_inbox_placement_percent{label} 90.0" in metrics
    assert f"mailramp_mailbox_braked{label} 1.0" in metrics

    # Joining the warm-up pool: a zone that is none is refused beside its field.
    page.check("#warmup_enabled")
    page.fill("#warmup_timezone", "Mars/Olympus")
    page.click("#warmup button[type=submit]")
    assert page.get_attribute("#warmup_timezone", "aria-invalid") == "true"
    assert "unknown time zone 'Mars/Olympus'" in page.inner_text("#warmup_timezone-error")
    assert page.is_checked("#warmup_enabled")  # what was typed stays
    page.fill("#warmup_timezone", "Europe/Paris")
    page.fill("#warmup_max", "12")
    page.click("#warmup button[type=submit]")
    page.wait_for_url(f"**/mailboxes/{mailbox_id}/health#warmup")
    assert page.is_checked("#warmup_enabled")
    assert (page.input_value("#warmup_max"), page.input_value("#warmup_timezone")) == (
        "12",
        "Europe/Paris",
    )
    assert "warm-up emails sent (up to 12 a day)" in page.inner_text("#warmup-today")

    page.click("#brake button[type=submit]")
    page.wait_for_url(f"**/mailboxes/{mailbox_id}/health")
    assert page.query_selector("#brake") is None
    assert f"mailramp_mailbox_braked{label} 0.0" in page.request.get(f"{base}/metrics").text()
    assert page.problems == []
