"""A Python client generated from `/openapi.json` by openapi-python-client, used as an
integrator would: sign up, make an API key, link a mailbox, create a campaign, import its
people from a CSV, launch it and read its metrics; and meet a 404, a 409 and a 422, each
parsed into the document's error type. The client raises on any status the document does
not list for the operation (`raise_on_unexpected_status`).

The generator runs from its own virtual environment (scripts/test: `ensure_tool`), its
pins kept apart from the project's."""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.conftest import STRICT
from tests.web.conftest import api_site

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / ".test-services/tools/openapi-python-client/bin/openapi-python-client"
# Enum values as Literal strings: time zone names such as GMT+0 and GMT-0 would otherwise
# make one Python identifier twice (docs/api.md says so too).
CONFIG = "literal_enums: true\npost_hooks: []\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_site(tmp_path_factory.mktemp("client-site")) as base:
        yield base


@pytest.fixture(scope="module")
def generated(site: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    if not GENERATOR.exists():
        message = "openapi-python-client is not installed; run scripts/test (ensure_tool)"
        if STRICT:
            pytest.fail(f"strict mode: {message}", pytrace=False)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("client")
    (work / "openapi.json").write_bytes(httpx.get(f"{site}/openapi.json").content)
    (work / "config.yml").write_text(CONFIG)
    made = subprocess.run(
        [str(GENERATOR), "generate", "--path", "openapi.json", "--config", "config.yml",
         "--meta", "none", "--output-path", "mailramp_client"],
        cwd=work, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    # Every operation made it into the client: the generator skips what it cannot read.
    assert "Warning" not in made.stdout, made.stdout
    sys.path.insert(0, str(work))
    try:
        yield importlib.import_module("mailramp_client")
    finally:
        sys.path.remove(str(work))
        for name in [name for name in sys.modules if name.startswith("mailramp_client")]:
            del sys.modules[name]


def _module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


def test_a_generated_client_runs_a_campaign_and_reads_errors_as_typed_values(
    site: str, generated: ModuleType
) -> None:
    api = lambda name: _module(generated, f"api.{name}")  # noqa: E731
    models = _module(generated, "models")
    types = _module(generated, "types")

    with generated.Client(base_url=site, raise_on_unexpected_status=True) as anonymous:
        signed_up = api("sign_in.sign_up").sync_detailed(
            client=anonymous,
            body=models.SignUp(user_name="Gen", login_id="gen", password="generated passphrase"),
        )
        assert signed_up.status_code == 201
        session = signed_up.parsed
        assert isinstance(session, models.SessionStarted) and session.user.login_id == "gen"
        # On the open connection, which holds the session cookie: a change needs the token.
        anonymous.with_headers({"X-CSRF-Token": session.csrf_token})
        made = api("account.create_api_key").sync_detailed(
            client=anonymous, body=models.ApiKeyCreate(name="integration")
        )
    assert made.status_code == 201 and isinstance(made.parsed, models.NewApiKeyPublic)
    with generated.AuthenticatedClient(
        base_url=site, token=made.parsed.key, raise_on_unexpected_status=True
    ) as client:
        _run_a_campaign(api, models, types, client)


def _run_a_campaign(api: Any, models: Any, types: Any, client: Any) -> None:
    box = api("mailboxes.link_mailbox").sync(
        client=client,
        body=models.MailboxCreate(
            email="sales@acme.com", provider="smtp", smtp_host="smtp.acme.com", password="pw"
        ),
    )
    assert isinstance(box, models.MailboxPublic) and box.email == "sales@acme.com"

    start = datetime.now(UTC) + timedelta(days=1)  # relative to now: holds on any day
    campaign = api("campaigns.create_campaign").sync(
        client=client,
        body=models.CampaignCreate(
            mailbox_id=box.mailbox_id, campaign_name="Generated", subject="Hello {{first_name}}",
            message="Hi {{first_name}}, a word from a generated client.", duration=48.0,
            start_time=start,
        ),
    )  # fmt: skip
    assert isinstance(campaign, models.CampaignPublic), campaign
    campaign_id = campaign.campaign_id

    people = b"email,first_name\nann@example.com,Ann\nbob@example.com,Bob\nnot-an-address,Zed\n"
    report = api("campaigns.upload_recipients").sync(
        campaign_id=campaign_id,
        client=client,
        body=models.BodyUploadRecipients(
            file=types.File(
                payload=io.BytesIO(people), file_name="people.csv", mime_type="text/csv"
            )
        ),
    )
    assert isinstance(report, models.ImportReportPublic), report
    assert (report.accepted, report.invalid_count, report.total_recipients) == (2, 1, 2)
    assert (report.invalid[0].row, report.invalid[0].value) == (4, "not-an-address")

    launched = api("campaigns.launch_campaign").sync(campaign_id=campaign_id, client=client)
    assert isinstance(launched, models.CampaignPublic) and launched.status in (
        "scheduled",
        "active",
    )

    metrics = api("campaigns.campaign_metrics").sync(campaign_id=campaign_id, client=client)
    assert isinstance(metrics, models.MetricsPublic), metrics
    assert (metrics.campaign_id, metrics.total_sent) == (campaign_id, 0)

    # Errors arrive as the document's error type, with the status the document lists.
    missing = api("campaigns.get_campaign").sync_detailed(campaign_id=uuid.uuid4(), client=client)
    assert missing.status_code == 404 and isinstance(missing.parsed, models.ErrorPublic)
    assert missing.parsed.error.code == "not_found"

    label = api("conversations.add_lead_label")
    assert (
        label.sync_detailed(client=client, body=models.LeadLabelIn(name="Hot")).status_code == 201
    )
    again = label.sync_detailed(client=client, body=models.LeadLabelIn(name="hot"))
    assert again.status_code == 409 and isinstance(again.parsed, models.ErrorPublic)
    assert "hot" in again.parsed.error.message.lower()

    refused = api("campaigns.create_campaign").sync_detailed(
        client=client,
        body=models.CampaignCreate(
            mailbox_id=box.mailbox_id, campaign_name="Never", subject="s", message="m",
            duration=0.0, start_time=start,
        ),
    )  # fmt: skip
    assert refused.status_code == 422 and isinstance(refused.parsed, models.ErrorPublic)
    assert refused.parsed.error.field == "duration"
