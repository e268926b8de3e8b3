"""Running mailramp's own command as a user would: a subprocess in a directory of its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

MAILRAMP = [sys.executable, "-m", "mailramp"]

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BOX_DRAWING = re.compile(r"[\u2500-\u257f]")


def plain(output: str) -> str:
    """What a command printed, as words: colour codes, box lines and line breaks gone, runs
    of spaces made one. Typer's error panels (Rich) wrap at the terminal's width, so a
    phrase may be split across lines; check phrases against `plain(result.stderr)` and the
    test holds whatever COLUMNS, TERM or NO_COLOR say (CI runs the CLI tests at 40 columns)."""
    text = _BOX_DRAWING.sub(" ", _ANSI_ESCAPE.sub("", output))
    return " ".join(text.split())


SUITE_SETTINGS = {
    "MAILRAMP_SEND_GAP_MIN_SECONDS": "0",
    "MAILRAMP_SEND_GAP_MAX_SECONDS": "0",
    "MAILRAMP_RAMP_NEW_MAILBOXES": "false",
}
"""What every test runs with unless it says otherwise: no pause between two emails of one
mailbox (a few minutes by default), so a test sends its emails in seconds; a new mailbox's
daily limit applies from its first day (it ramps up from 10 a day by default), so a test
sends a campaign's hundreds in one day. The tests of the pause
(tests/sending/test_pacing.py) and of the ramp (tests/deliverability/test_ramp.py) set
them."""


def clean_environment(**overrides: str) -> dict[str, str]:
    """The environment without any MAILRAMP_ setting of the caller's, plus the suite's
    settings and `overrides`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MAILRAMP_")}
    environment.update(SUITE_SETTINGS)
    environment.update(overrides)
    return environment


def run_mailramp(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`mailramp ARGS` to completion, `stdin` typed into it."""
    return subprocess.run(
        [*MAILRAMP, *args],
        cwd=cwd,
        env=dict(env) if env is not None else clean_environment(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def serving(
    port: int, *, cwd: Path, env: Mapping[str, str] | None = None, ready_timeout: float = 30
) -> Iterator[subprocess.Popen[str]]:
    """`mailramp serve` running until the block ends; waits for /healthz to answer. Its
    output goes to `serve.log` in `cwd`."""
    log = (cwd / "serve.log").open("w")
    process = subprocess.Popen(
        [*MAILRAMP, "serve", "--port", str(port)],
        cwd=cwd,
        env=dict(env) if env is not None else clean_environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                output = (cwd / "serve.log").read_text()
                raise AssertionError(f"mailramp serve exited {process.returncode}:\n{output}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError("mailramp serve did not answer in time") from None
                time.sleep(0.1)
        yield process
    finally:
        stop_process(process)
        log.close()


def stop_process(process: subprocess.Popen[Any]) -> None:
    """End a server the tests started: SIGTERM, then SIGKILL after 10 s; close its pipe."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout:
        process.stdout.close()
