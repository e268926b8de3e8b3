"""Schemathesis runs the published OpenAPI document against `mailramp serve`, as a client
generator's user would trust it: every check (`--checks all`: no 5xx, every status, content
type and body schema as documented, what the schema accepts is accepted and what it refuses
is refused, 405 for undeclared methods, …) over the examples and coverage phases on SQLite
and on PostgreSQL (there the coverage phase's positive cases only) with a fixed seed, and
the fuzzing and stateful phases with a seed drawn for this run on the backend its parity
names (printed; `MAILRAMP_FUZZ_SEED=N` replays it).

A few operations refuse input the schema cannot describe, because the rule depends on the
world or on stored state rather than on the request's shape; for those alone, and for that
status alone, schemathesis is told the refusal is expected (OTHER_RULES, each with why)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import PostgresTarget, new_postgres_database
from tests.support.loops import run_blocking
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving

pytestmark = pytest.mark.long

FIXED_SEED = 20261205
SEED = int(os.environ.get("MAILRAMP_FUZZ_SEED") or random.SystemRandom().randrange(2**31))
EXAMPLES = 25
FIXED_PHASES = "examples,coverage"
"""The phases a seed hardly changes — the document's examples, every parameter's
boundaries — run on each backend every time, with the fixed seed: the backends differ in
how they store and refuse, which those cases reach."""
RANDOM_PHASES = "fuzzing,stateful"
"""The phases a seed changes run once per CI run, with a new seed, on one backend: every
run explores new cases rather than replaying the same ones (CI's 30 minutes)."""

NEGATIVE_CASES_ONCE = ["[phases.coverage.generation]", 'mode = "positive"']
"""On PostgreSQL the coverage phase tries the positive cases — every boundary value the
schema accepts, which each backend must store — and leaves the negative ones to SQLite:
validation refuses them before any storage is reached, the same on every backend, and
generating them is most of the phase's time (CI's 30 minutes)."""

ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"]
"""What schemathesis expects by default for a request the schema accepts (a 5xx is still a
failure: `not_a_server_error`), and 413: a body over the server's size limit
(MAILRAMP_MAX_REQUEST_BYTES) is refused whatever it holds, a rule no schema can state."""
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
"""What schemathesis expects by default for a request the schema refuses, and 413 (above):
a fuzzed campaign of 8 MiB whose step was also too long is refused for its size first."""
Rule = tuple[str, str, str, str, str]
OTHER_RULES: list[Rule] = [
    # (method, path, check, setting in TOML, why)
    ("POST", "/api/v1/webhooks", "positive_data_acceptance",
     f"expected-statuses = {[*ACCEPTED, '422']}",
     "the URL's host must resolve, now, to public addresses (docs/webhooks.md)"),
    ("PATCH", "/api/v1/webhooks/{endpoint_id}", "positive_data_acceptance",
     f"expected-statuses = {[*ACCEPTED, '422']}", "as for POST /api/v1/webhooks"),
    ("PUT", "/api/v1/mailboxes/{mailbox_id}/tracking-domain", "positive_data_acceptance",
     f"expected-statuses = {[*ACCEPTED, '422']}",
     "the domain must be a subdomain of the mailbox's own domain; its CNAME is looked up"),
    ("GET", "/api/v1/mailboxes/oauth/{provider}/callback", "positive_data_acceptance",
     f"expected-statuses = {[*ACCEPTED, '400']}",
     "`state` must be the signed value the start of the linking made"),
    ("POST", "/api/v1/campaigns", "positive_data_acceptance",
     f"expected-statuses = {[*ACCEPTED, '422']}",
     "the campaign must end in the future (the clock); merge tags and spintax well formed, "
     "end_hour after start_hour, mailbox_ids starting with mailbox_id: rules across "
     "characters, fields or time"),
    ("PATCH", "/api/v1/campaigns/{campaign_id}", "positive_data_acceptance",
     f"expected-statuses = {[*ACCEPTED, '422']}", "as for POST /api/v1/campaigns"),
    ("PUT", "/api/v1/campaigns/{campaign_id}/steps", "positive_data_acceptance",
     f"expected-statuses = {[*ACCEPTED, '422']}",
     "merge tags and spintax well formed; a `step` names one of the campaign's steps"),
    ("PUT", "/api/v1/campaigns/{campaign_id}/recipients/{record_id}/lead-status",
     "positive_data_acceptance", f"expected-statuses = {[*ACCEPTED, '422']}",
     "a lead status is a built-in one or one of the user's own labels (stored state)"),
    ("GET", "/api/v1/mailboxes/{mailbox_id}", "use_after_free", "enabled = false",
     "DELETE /api/v1/mailboxes/{mailbox_id} unlinks: the mailbox stays readable, with its "
     "history, as `inactive` / `unlinked` (docs/api.md)"),
    ("GET", "/api/v1/mailboxes/{mailbox_id}/health", "use_after_free", "enabled = false",
     "as above: an unlinked mailbox's health stays readable"),
]  # fmt: skip


def _config(path: Path, backend: str) -> Path:
    lines = [
        "[checks]",
        "enabled = true  # every check (--checks all), so that one can be turned off below",
        "[generation]",
        "# No NUL (U+0000) in generated text: every text refuses it (web/contract.py; "
        "PostgreSQL cannot store one), a rule a schema could only state as a pattern on "
        "every string; tests/web/test_api_docs.py checks the refusal.",
        "allow-x00 = false",
        "[checks.positive_data_acceptance]",
        f"expected-statuses = {ACCEPTED}",
        "[checks.negative_data_rejection]",
        f"expected-statuses = {[*REJECTED, '5xx']}",
        "[phases.coverage]",
        "extra-data-sources = { responses = true }",
        *(NEGATIVE_CASES_ONCE if backend == "postgresql" else []),
        "[phases.stateful]",
        'inference = { algorithms = ["location-headers", "dependency-analysis"] }',
    ]
    for method, route, check, setting, why in OTHER_RULES:
        lines += [
            "",
            f"# {why}",
            "[[operations]]",
            f'include-method = "{method}"',
            f'include-path = "{route}"',
            f"[operations.checks.{check}]",
            setting,
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _seeded(base: str) -> str:
    """A new user's API key, with a mailbox, a campaign with people and a webhook endpoint
    for the operations to find besides what they make."""
    with httpx.Client(base_url=base) as client:
        signed_up = client.post(
            "/api/v1/auth/signup",
            json={"user_name": "Fuzz", "login_id": "fuzz", "password": "fuzzing passphrase"},
        )
        csrf = signed_up.json()["csrf_token"]
        key = client.post(
            "/api/v1/api-keys", json={"name": "fuzz"}, headers={"X-CSRF-Token": csrf}
        ).json()["key"]
        client.headers["Authorization"] = f"Bearer {key}"
        box = client.post(
            "/api/v1/mailboxes",
            json={"email": "f@acme.com", "provider": "smtp", "smtp_host": "smtp.acme.com",
                  "password": "pw"},
        )  # fmt: skip
        assert box.status_code == 201, box.text
        campaign = client.post(
            "/api/v1/campaigns",
            json={"mailbox_id": box.json()["_id"], "campaign_name": "Fuzz", "subject": "Hi",
                  "message": "Hello {{first_name}}", "duration": 24,
                  "start_time": "2030-01-07T09:00:00Z"},
        )  # fmt: skip
        assert campaign.status_code == 201, campaign.text
        people = "email,first_name\nann@example.com,Ann\nbob@example.com,Bob\n"
        imported = client.post(
            f"/api/v1/campaigns/{campaign.json()['campaign_id']}/recipients",
            files={"file": ("people.csv", people, "text/csv")},
        )
        assert imported.status_code == 200, imported.text
        hook = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"})
        assert hook.status_code == 201, hook.text
    return str(key)


RUNS = [
    ("sqlite", FIXED_SEED, FIXED_PHASES),
    ("postgresql", FIXED_SEED, FIXED_PHASES),
    # The seed drawn for this run, on the backend it draws too: across runs, both backends
    # get new seeds.
    (("sqlite", "postgresql")[SEED % 2], SEED, RANDOM_PHASES),
]


def _failures_first(output: str) -> str:
    """The report's failures (each with the request that replays it) and its summary: the
    warnings between them list dozens of operations and must not push the failures out of
    what pytest shows."""
    start = output.find("FAILURES")
    failures = output[start : start + 10000] if start >= 0 else ""
    return failures + "\n[…]\n" + output[-3000:]


@pytest.mark.parametrize(
    ("backend", "seed", "phases"),
    RUNS,
    ids=["sqlite-fixed-seed", "postgresql-fixed-seed", "seed-of-this-run"],
)
def test_every_generated_request_gets_the_answer_the_document_states(
    backend: str, seed: int, phases: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = {"MAILRAMP_RUN_WORKER": "false", "MAILRAMP_ALLOW_PRIVATE_HOSTS": "true"}
    if backend == "postgresql":
        target: PostgresTarget = request.getfixturevalue("postgres")
        settings["MAILRAMP_DATABASE_URL"] = run_blocking(new_postgres_database(target))
    with serving(port, cwd=tmp_path, env=clean_environment(**settings)):
        key = _seeded(base)
        executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
        assert executable is not None
        result = subprocess.run(
            [
                executable,
                "--config-file",
                str(_config(tmp_path / "schemathesis.toml", backend)),
                "run",
                f"{base}/openapi.json",
                "-H",
                f"Authorization: Bearer {key}",
                "--phases",
                phases,
                "--max-examples",
                str(EXAMPLES),
                "--request-timeout",
                "15",
                "--seed",
                str(seed),
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,
        )
    replay = f"seed {seed} (MAILRAMP_FUZZ_SEED={seed} replays it)\n"
    summary = replay + _failures_first(result.stdout)
    assert result.returncode == 0, summary
    assert "failures" not in summary.split("SUMMARY")[-1], summary
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-5000:]
