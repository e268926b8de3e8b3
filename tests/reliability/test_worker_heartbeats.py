"""Workers are visible (issue 28, item 3): two `mailramp worker` processes on one database
record heartbeats; `mailramp worker list` shows both alive; one is SIGKILLed and shows as
gone once it has been silent for three of its leases (2 s each here), while the other's
`/healthz` counts one alive and one gone; SIGTERM makes the other say goodbye: stopped."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.postgres import free_port
from tests.support.processes import MAILRAMP, clean_environment, run_mailramp, stop_process

pytestmark = pytest.mark.reliability

LEASE_SECONDS = 2.0
GONE_BOUND = 3 * LEASE_SECONDS
"""How long a dead worker may still show as alive: three leases of silence (its last beat
came at most half a lease before it died, so it may show alive a little over that)."""


def workers(tmp_path: Path, env: dict[str, str]) -> dict[int, dict[str, Any]]:
    listed = run_mailramp("worker", "list", "--json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    return {int(row["pid"]): row for row in json.loads(listed.stdout)}


def wait_for(condition: Any, seconds: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if condition():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds:.0f} s: {what}")


def test_a_killed_worker_is_shown_gone_and_a_stopped_one_stopped(tmp_path: Path) -> None:
    env = clean_environment(
        MAILRAMP_WORKER_LEASE_SECONDS=str(LEASE_SECONDS), MAILRAMP_WORKER_POLL_SECONDS="0.2"
    )
    assert run_mailramp("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    port = free_port()
    logs = [(tmp_path / f"worker{n}.log").open("w") for n in (1, 2)]
    doomed = subprocess.Popen(
        [*MAILRAMP, "worker"], cwd=tmp_path, env=env, stdout=logs[0], stderr=subprocess.STDOUT
    )
    survivor = subprocess.Popen(
        [*MAILRAMP, "worker", "--health-port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=logs[1],
        stderr=subprocess.STDOUT,
    )
    try:
        pids = {doomed.pid, survivor.pid}
        wait_for(
            lambda: (
                {p: w["state"] for p, w in workers(tmp_path, env).items()}
                == dict.fromkeys(pids, "alive")
            ),
            60,
            "both workers listed alive",
        )
        listed = workers(tmp_path, env)[survivor.pid]
        assert listed["lease_seconds"] == LEASE_SECONDS and listed["host"]
        assert listed["worker_id"].split(":")[1] == str(survivor.pid)  # host:pid:suffix

        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        killed_at = time.monotonic()
        wait_for(
            lambda: workers(tmp_path, env)[doomed.pid]["state"] == "gone",
            GONE_BOUND + 15,  # + the CLI's own start-up, a few seconds a call
            "the killed worker shown gone",
        )
        silent = time.monotonic() - killed_at
        print(f"\nkilled worker shown gone {silent:.1f} s after SIGKILL (lease {LEASE_SECONDS} s)")
        assert workers(tmp_path, env)[survivor.pid]["state"] == "alive"
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
        assert health["workers"] == {"alive": 1, "stopped": 0, "gone": 1}

        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=30) == 0
        final = workers(tmp_path, env)
        assert final[survivor.pid]["state"] == "stopped" and final[survivor.pid]["stopped_at"]
        assert final[doomed.pid]["state"] == "gone"
        text = run_mailramp("worker", "list", cwd=tmp_path, env=env).stdout.splitlines()
        assert sorted(line.split()[1] for line in text) == ["gone", "stopped"]
    finally:
        for process in (doomed, survivor):
            stop_process(process)
        for log in logs:
            log.close()
