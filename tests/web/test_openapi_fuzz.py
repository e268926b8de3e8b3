"""Schemathesis runs the published OpenAPI schema against `mailramp serve`: whatever the
generated input, no request may end in a 5xx, and every answer is one the document states
(its status, its content type, its body's schema)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving


def test_no_generated_request_causes_a_server_error(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = clean_environment(MAILRAMP_RUN_WORKER="false")
    with serving(port, cwd=tmp_path, env=environment), httpx.Client(base_url=base) as client:
        signed_up = client.post(
            "/api/v1/auth/signup",
            json={"user_name": "Fuzz", "login_id": "fuzz", "password": "fuzzing passphrase"},
        )
        csrf = signed_up.json()["csrf_token"]
        key = client.post(
            "/api/v1/api-keys", json={"name": "fuzz"}, headers={"X-CSRF-Token": csrf}
        ).json()["key"]
        # A mailbox and a campaign to aim at, besides the random ids.
        box = client.post(
            "/api/v1/mailboxes",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "email": "f@acme.com",
                "provider": "smtp",
                "smtp_host": "smtp.acme.com",
                "password": "pw",
            },
        ).json()
        assert "_id" in box
        executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
        assert executable is not None
        result = subprocess.run(
            [
                executable,
                "run",
                f"{base}/openapi.json",
                "-H",
                f"Authorization: Bearer {key}",
                "--checks",
                "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance",
                "--max-examples",
                "15",
                "--phases",
                "fuzzing",
                "--request-timeout",
                "15",
                "--seed",
                "20261125",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert " passed" in summary and "failed" not in summary.split("Test cases:")[-1], summary
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log and "unexpected error" not in log
