"""`mailramp demo` end to end, as a newcomer runs it: a subprocess in an empty directory on
the embedded SQLite default. Its final numbers are checked against the database, against a
recompute from the stored events, and against what the simulated people did; then
`mailramp serve` shows the campaign to the printed demo login."""

from __future__ import annotations

import imaplib
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailramp.config import Settings
from mailramp.demo.servers import DemoInbox
from mailramp.metrics.models import COUNTERS, CampaignMetrics
from mailramp.runtime import open_runtime
from tests.support.demo_run import DemoRuns
from tests.support.loops import run_blocking
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving


async def _stored(directory: Path, campaign_id: str) -> tuple[Any, ...]:
    settings = Settings(
        database_url=f"sqlite:///{directory / 'mailramp.db'}",
        encryption_key_file=directory / "mailramp.key",
    )
    runtime = await open_runtime(settings)
    try:
        campaign = await runtime.store.get_campaign_unscoped(campaign_id)
        assert campaign is not None
        stored = await runtime.metrics.get_campaign_metrics(campaign_id, user_id=campaign.user_id)
        recomputed = await runtime.tracking.recompute(campaign.user_id, campaign_id)
        counts = await runtime.sending.status_counts(campaign.user_id, campaign_id)
        mailboxes = await runtime.mailboxes.list_mailboxes(campaign.user_id)
        campaigns = await runtime.campaigns.list_campaigns(campaign.user_id)
        return campaign, stored, recomputed, counts, mailboxes, campaigns.total
    finally:
        await runtime.close()


def base_of(url: str) -> str:
    """The scheme and host of a URL the demo printed (its port is the demo's, not serve's)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _counters(metrics: CampaignMetrics | dict[str, Any]) -> dict[str, int]:
    data = metrics if isinstance(metrics, dict) else metrics.model_dump()
    return {name: int(data[name]) for name in COUNTERS}


@pytest.fixture(scope="module")
def first_run(
    demo_runs: DemoRuns, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, int, dict[str, Any]]:
    """A newcomer's first demo, in an empty directory: its directory, port and output."""
    first = demo_runs.first
    return first.copy(tmp_path_factory.mktemp("demo") / "run"), first.port, first.result


def test_the_demo_runs_end_to_end_and_its_numbers_are_the_databases(
    first_run: tuple[Path, int, dict[str, Any]],
) -> None:
    tmp_path, _, result = first_run
    assert result["problems"] == []
    assert result["import"]["accepted"] == 80
    assert result["import"]["duplicates"] == 1 and result["import"]["invalid_count"] == 1

    campaign, stored, recomputed, counts, mailboxes, _ = run_blocking(
        _stored(tmp_path, result["campaign_id"])
    )
    printed = _counters(result["metrics"])
    # What it printed is what is stored, and what is stored is what the events say.
    assert printed == _counters(stored) == _counters(recomputed)
    assert campaign.status == "completed"
    assert counts == result["recipients"]
    assert sum(counts.values()) == 80 * 3  # one email per person and step
    states = {state for state, count in counts.items() if count}
    assert {"sent", "bounced", "stopped"} <= states <= {"sent", "bounced", "stopped"}
    # A 3-step sequence from two mailboxes: every person got the first email; an answer, a
    # bounce or an unsubscribe stopped the rest.
    assert campaign.steps == [1, 2, 3] and len(campaign.mailbox_ids) == 2
    first, second, third = result["steps_sent"]
    assert first == 80 and first > second >= third > 0

    # What the simulated people did is what mailramp counted.
    did = result["simulated"]
    refused_at_send = 80 - did["received"]
    assert refused_at_send >= 1  # an address that does not exist: 550 at RCPT
    assert stored.total_sent == 80
    assert stored.total_bounced == refused_at_send + did["late_bounces"] >= 2
    assert stored.total_delivered == 80 - stored.total_bounced
    assert stored.total_human_opened == did["human_opens"] >= 1
    assert stored.total_human_clicks == did["human_clicks"] >= 1
    assert stored.total_opened >= did["human_opens"] + did["machine_opens"]
    assert stored.total_clicks == did["human_clicks"] + did["scanner_clicks"]
    assert stored.total_replied == did["replies"] >= 1
    assert stored.total_auto_replied == did["auto_replies"] >= 1
    assert stored.total_unsubscribed == did["unsubscribes"] >= 1
    assert stored.open_rate == round(100 * stored.total_opened / stored.total_delivered, 2)
    # The last progress line says what the summary says.
    last = result["progress"][-1]
    assert f"80/80 people reached · {first + second + third} emails sent · " in last
    assert f"opened by people {stored.total_human_opened} " in last
    assert f"replied {stored.total_replied} · bounced {stored.total_bounced} · " in last

    # Before the campaign, a warm-up day: each mailbox opened 6 conversations with the other,
    # every email was found, the ones the demo's filter put in Junk were moved out.
    warmup = result["warmup"]
    assert warmup["failed"] == 0 and warmup["filed_in_junk"] >= 1
    assert 12 <= warmup["sent"] <= 12 + warmup["replies_planned"]
    assert sum(warmup["found"].values()) == warmup["sent"]
    assert warmup["found"]["spam"] == warmup["filed_in_junk"]

    # The demo mailboxes are parked: `mailramp serve` will not try their stopped servers.
    assert len(mailboxes) == 2
    for mailbox in mailboxes:
        assert mailbox.status == "inactive" and "demo" in (mailbox.status_reason or "")

    # The data stays: `mailramp serve` shows it to the printed login.
    serve_port = free_port()
    with serving(serve_port, cwd=tmp_path, env=clean_environment(MAILRAMP_RUN_WORKER="false")):
        base = f"http://127.0.0.1:{serve_port}"
        with httpx.Client(base_url=base) as browser:
            signed_in = browser.post(
                "/signin", data={"login_id": result["login"], "password": result["password"]}
            )
            assert signed_in.status_code == 303, signed_in.text
            page = browser.get(f"/campaigns/{result['campaign_id']}")
            assert page.status_code == 200
            assert "Demo ·" in page.text and "completed" in page.text
            sent_cell = re.search(r'data-metric="sent"[^>]*>(\d+)<', page.text)
            assert sent_cell is not None and int(sent_cell.group(1)) == 80
            # The warm-up day is in each mailbox's health: together, what the demo printed.
            warmed = 0
            for url in warmup["health_urls"]:
                health = browser.get(url.removeprefix(base_of(url)))
                assert health.status_code == 200
                row = re.search(r"<th>Warm-up emails sent</th><td>(\d+)</td>", health.text)
                assert row is not None
                warmed += int(row.group(1))
                assert "of its warm-up emails reached the inbox" in health.text
            assert warmed == warmup["sent"]
            # The replies are in the inbox, one thread each, to read and answer.
            assert result["inbox_url"].endswith("/inbox")  # on the demo's own port
            inbox = browser.get("/api/v1/inbox").json()
            assert inbox["total"] == did["replies"]
            thread = inbox["items"][0]
            opened = browser.get(f"/inbox/{thread['campaign_id']}/{thread['record_id']}")
            assert opened.status_code == 200 and 'id="answer-form"' in opened.text
            assert "wrote:" not in thread["latest"]["text"]  # the quoted email is folded


def test_a_second_demo_run_reuses_the_demo_user_and_mailboxes(demo_runs: DemoRuns) -> None:
    # A second run (in the first's directory) reuses the demo user and mailboxes and adds a
    # campaign; the people who bounced or unsubscribed the first time are suppressed, not
    # mailed again.
    result, again = demo_runs.first.result, demo_runs.second.result
    assert again["problems"] == [] and again["password"] != result["password"]
    *_, mailboxes, campaigns = run_blocking(
        _stored(demo_runs.second.directory, again["campaign_id"])
    )
    assert len(mailboxes) == 2 and campaigns == 2
    imported = again["import"]
    assert imported["accepted"] + imported["suppressed"] == 20
    assert again["metrics"]["total_sent"] == imported["total_recipients"] == imported["accepted"]
    # Its warm-up day is the business day before the first run's: no day is played twice.
    assert again["warmup"]["day"] < result["warmup"]["day"]
    assert again["warmup"]["sent"] >= 12 and again["warmup"]["failed"] == 0


def test_the_demo_inbox_takes_a_password_that_looks_like_an_option() -> None:
    # Random passwords start with "-" once in 64 runs; the IMAP server took it for an option.
    inbox = DemoInbox("demo@acme.test", "-looks-like-an-option").start()
    try:
        inbox.append(b"Subject: hello\r\n\r\nbody\r\n")
        with imaplib.IMAP4("127.0.0.1", inbox.port) as client:
            assert client.login("demo@acme.test", "-looks-like-an-option")[0] == "OK"
            assert client.select("INBOX") == ("OK", [b"1"])
    finally:
        inbox.stop()
