"""`python -m tests.support.real_token`, the way to get the refresh token the real-account
tests need, run against the Microsoft and Google stand-ins: it prints the consent URL,
takes the browser's return on localhost and prints a refresh token that works."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.oauth_servers import GoogleStandIn, MicrosoftStandIn, OAuthStandIn
from tests.support.postgres import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stand_ins() -> Iterator[tuple[MicrosoftStandIn, GoogleStandIn]]:
    microsoft = MicrosoftStandIn(client_id="ms-client", client_secret="ms-secret")
    google = GoogleStandIn(client_id="g-client", client_secret="g-secret")
    microsoft.start()
    google.start()
    yield microsoft, google
    microsoft.stop()
    google.stop()


def _run(provider: str, email: str, server: OAuthStandIn, environment: dict[str, str]) -> str:
    port = free_port()
    command = ["-m", "tests.support.real_token", provider, "--port", str(port)]
    script = subprocess.Popen(
        [sys.executable, *command, "--login-hint", email],
        cwd=ROOT,
        env={**os.environ, **environment},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert script.stdout is not None
    lines = [script.stdout.readline(), script.stdout.readline(), script.stdout.readline()]
    url = lines[2].strip()
    assert lines[0].startswith("Open this URL") and url.startswith(server.origin), lines
    for _ in range(50):  # the script listens right after printing
        try:
            answer = httpx.get(url, follow_redirects=True)
            break
        except httpx.ConnectError:
            time.sleep(0.1)
    assert answer.status_code == 200 and "go back to the terminal" in answer.text
    output, _ = script.communicate(timeout=30)
    assert script.returncode == 0, output
    return output.strip().splitlines()[-1]


def test_prints_a_refresh_token_that_works(
    stand_ins: tuple[MicrosoftStandIn, GoogleStandIn],
) -> None:
    microsoft, google = stand_ins
    line = _run(
        "outlook",
        "ann@contoso.com",
        microsoft,
        {
            "MAILRAMP_MICROSOFT_CLIENT_ID": "ms-client",
            "MAILRAMP_MICROSOFT_CLIENT_SECRET": "ms-secret",
            "MAILRAMP_MICROSOFT_AUTHORITY_URL": microsoft.origin,
        },
    )
    prefix = "export MAILRAMP_TEST_MICROSOFT_REFRESH_TOKEN='"
    assert line.startswith(prefix) and line.endswith("'")
    assert microsoft.refresh_tokens[line.removeprefix(prefix)[:-1]] == "ann@contoso.com"

    line = _run(
        "gmail",
        "bob@gmail.com",
        google,
        {
            "MAILRAMP_GOOGLE_CLIENT_ID": "g-client",
            "MAILRAMP_GOOGLE_CLIENT_SECRET": "g-secret",
            "MAILRAMP_GOOGLE_AUTH_URL": google.auth_url,
            "MAILRAMP_GOOGLE_TOKEN_URL": google.token_url,
        },
    )
    prefix = "export MAILRAMP_TEST_GOOGLE_REFRESH_TOKEN='"
    assert line.startswith(prefix)
    assert google.refresh_tokens[line.removeprefix(prefix)[:-1]] == "bob@gmail.com"
