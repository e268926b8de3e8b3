"""`mailramp demo` as a newcomer runs it — a subprocess in an empty directory — played once
per test session, in the background.

A demo run takes a minute or two of mostly waiting (its follow-ups wait for the simulated
people to answer), so the session starts both runs the tests need as soon as it knows it
will need them (tests/conftest.py, at collection) and runs its other tests meanwhile; the
tests that use them run last and wait for what is not finished yet:

- the first run (80 people in 0.3 minutes), whose directory is kept as it was left for
  tests to copy (`DemoRuns.first`);
- a second run (20 people in 0.1 minutes) in a copy of the first's directory, as someone
  running the demo again (`DemoRuns.second`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.postgres import free_port
from tests.support.processes import MAILRAMP, clean_environment, plain

TIMEOUT = 300


@dataclass(frozen=True)
class DemoRun:
    """One demo run: its directory (database and key file, as it was left), the port it
    served on and what it printed (with its progress lines under "progress")."""

    directory: Path
    port: int
    result: dict[str, Any]

    def copy(self, directory: Path) -> Path:
        """The run's directory copied into a new `directory`."""
        shutil.copytree(self.directory, directory)
        return directory


class DemoRuns:
    """The session's two demo runs, played one after the other in a background thread."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self._first_done = threading.Event()
        self._done = threading.Event()
        self._runs: list[DemoRun] = []
        self._failure: BaseException | None = None
        self._process: subprocess.Popen[str] | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._play, name="demo-runs", daemon=True)

    def start(self) -> DemoRuns:
        self._thread.start()
        return self

    @property
    def first(self) -> DemoRun:
        return self._wait(self._first_done, 1)[0]

    @property
    def second(self) -> DemoRun:
        return self._wait(self._done, 2)[1]

    def stop(self) -> None:
        """End a run still going (the session is over) and remove the runs' directories."""
        self._stopping = True
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self._thread.join(timeout=30)
        shutil.rmtree(self._base, ignore_errors=True)

    def _wait(self, done: threading.Event, runs: int) -> list[DemoRun]:
        done.wait(timeout=3 * TIMEOUT)
        if len(self._runs) < runs and self._failure is not None:
            raise AssertionError(f"the demo failed: {self._failure}") from self._failure
        assert len(self._runs) >= runs, "the demo runs did not finish"
        return self._runs

    def _play(self) -> None:
        try:
            first = self._base / "first"
            first.mkdir()
            port = free_port()
            self._runs.append(DemoRun(first, port, self._run(first, port, 80, 0.3)))
            self._first_done.set()
            again = self._runs[0].copy(self._base / "second")
            self._runs.append(DemoRun(again, port, self._run(again, port, 20, 0.1)))
        except BaseException as failure:  # handed to the test that waits for it
            self._failure = failure
        finally:
            self._first_done.set()
            self._done.set()

    def _run(self, directory: Path, port: int, recipients: int, minutes: float) -> dict[str, Any]:
        if self._stopping:
            raise RuntimeError("the session ended first")
        self._process = subprocess.Popen(
            [*MAILRAMP, "demo", "--recipients", str(recipients), "--minutes", str(minutes),
             "--port", str(port), "--json"],
            cwd=directory, env=clean_environment(), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            stdout, stderr = self._process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            stdout, stderr = self._process.communicate()
            raise AssertionError(f"the demo ran over {TIMEOUT} s: {stderr[-3000:]}") from None
        assert self._process.returncode == 0, stderr[-3000:]
        assert "Demo running: watch it live at http://127.0.0.1:" in plain(stderr)
        result: dict[str, Any] = json.loads(stdout)
        result["progress"] = [
            line for line in stderr.splitlines() if re.match(r"\[\s*\d+s\]", line)
        ]
        return result
