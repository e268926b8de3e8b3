"""A setting the environment gets wrong stops every command with one line naming the
variable, the value and what it must be, and exit status 5 — as JSON when
MAILRAMP_LOG_FORMAT=json says the logs are JSON (docs/troubleshooting.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import clean_environment, plain, run_mailramp

TAIL = "docs/configuration.md lists every setting"


@pytest.mark.parametrize(
    ("command", "setting", "value", "says"),
    [
        (["serve"], "MAILRAMP_PORT", "eighty", "input should be a valid integer"),
        (["worker"], "MAILRAMP_PUBLIC_BASE_URL", "mail.example.com", "must start with http"),
        (
            ["db", "upgrade"],
            "MAILRAMP_MONGODB_WRITE_CONCERN",
            "all",
            "must be `majority` or a number of members",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_it_and_exit_5(
    tmp_path: Path, command: list[str], setting: str, value: str, says: str
) -> None:
    result = run_mailramp(*command, cwd=tmp_path, env=clean_environment(**{setting: value}))
    assert result.returncode == 5
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert plain(lines[0]).startswith(f"error: {setting}: {says}")
    assert f"(given '{value}')" in lines[0] and lines[0].endswith(TAIL)
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing created: no database, no key file


def test_under_json_logs_the_error_is_a_json_line_and_several_are_counted(
    tmp_path: Path,
) -> None:
    result = run_mailramp(
        "serve",
        cwd=tmp_path,
        env=clean_environment(
            MAILRAMP_LOG_FORMAT="json", MAILRAMP_DB_POOL_SIZE="0", MAILRAMP_PORT="0"
        ),
    )
    assert result.returncode == 5
    [line] = result.stderr.strip().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["exit_code"] == 5
    assert entry["code"] == "configuration" and entry["field"] == "MAILRAMP_DB_POOL_SIZE"
    assert entry["message"].startswith(
        "MAILRAMP_DB_POOL_SIZE: input should be greater than or equal to 1 (given '0')"
    )
    assert "1 more problem(s) after this one" in entry["message"]


def test_the_demo_on_a_server_install_without_its_extras_says_what_to_install(
    tmp_path: Path,
) -> None:
    # `pip install mailramp` without [demo]: aiosmtpd (its SMTP server) is not there.
    code = "import sys; sys.modules['aiosmtpd'] = None; from mailramp.cli.main import app; app()"
    result = subprocess.run(
        [sys.executable, "-c", code, "demo"],
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 5
    assert plain(result.stderr.strip()) == (
        "error: the demo needs its extra packages: pip install 'mailramp[demo]'"
    )
