"""`mailramp worker` processes for the reliability tests, and the database reads they share.

Each worker logs to a file of its own; a worker's id (the `lease_owner` of what it holds)
starts with `host:pid:`, so the test can read what a process held at the moment it died.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from mailramp.storage.sql import SqlStore
from tests.scale.scenario import Target
from tests.support.postgres import free_port
from tests.support.processes import MAILRAMP

FINAL = frozenset({"sent", "bounced", "failed", "uncertain", "cancelled", "expired"})


async def query(target: Target, statement: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of one read on the run's database."""
    store = SqlStore.from_url(target.url, pool_size=1, max_overflow=0)
    try:
        async with store.engine.connect() as connection:
            rows = (await connection.execute(text(statement), params)).mappings().all()
            return [dict(row) for row in rows]
    finally:
        await store.close()


def owner_prefix(pid: int) -> str:
    """The start of the worker id (`lease_owner`) of the worker process `pid`."""
    return f"{socket.gethostname()}:{pid}:"


@dataclass
class Worker:
    """One `mailramp worker` process."""

    process: subprocess.Popen[bytes]
    log: Path
    health_port: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid


STARTING_SECONDS = 8.0
"""Time a worker process gets to import and open its runtime before a SIGTERM (two cores
under load: a few seconds)."""


@dataclass
class Fleet:
    """Worker processes on one environment; a killed one can be replaced."""

    environment: dict[str, str]
    directory: Path
    health: bool = False
    workers: list[Worker] = field(default_factory=list)
    retired: list[Worker] = field(default_factory=list)
    _started: int = 0
    _started_at: dict[int, float] = field(default_factory=dict)  # pid → monotonic

    def start(self, count: int = 1) -> list[Worker]:
        started = []
        for _ in range(count):
            log = self.directory / f"worker{self._started}.log"
            self._started += 1
            command = [*MAILRAMP, "worker"]
            port = None
            if self.health:
                port = free_port()
                command += ["--health-port", str(port)]
            with log.open("wb") as handle:
                process = subprocess.Popen(
                    command, env=self.environment, stdout=handle, stderr=subprocess.STDOUT
                )
            started.append(Worker(process, log, port))
            self._started_at[process.pid] = time.monotonic()
        self.workers.extend(started)
        return started

    def kill(self, worker: Worker) -> None:
        """SIGKILL, and wait until the process is gone."""
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait()
        self.workers.remove(worker)
        self.retired.append(worker)

    def check_alive(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is not None:
                raise AssertionError(
                    f"worker {worker.pid} exited with code {worker.process.returncode}:\n"
                    f"{worker.log.read_text(errors='replace')[-3000:]}"
                )

    def stop(self) -> list[int]:
        """SIGTERM every live worker (they finish what is in flight); their exit codes. A
        worker started a moment ago is first given STARTING_SECONDS: a SIGTERM while the
        interpreter is still importing is Unix's default, death (-15), and says nothing
        about how mailramp stops (from its runtime's opening on, a SIGTERM is kept and the
        worker stops cleanly once started: cli/main.py)."""
        for worker in self.workers:
            settled = self._started_at.get(worker.pid, 0.0) + STARTING_SECONDS
            while worker.process.poll() is None and time.monotonic() < settled:
                time.sleep(0.1)
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        codes = []
        for worker in self.workers:
            try:
                codes.append(worker.process.wait(timeout=60))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                codes.append(worker.process.wait())
        return codes

    def kill_all(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()

    def log_lines(self, pattern: str) -> list[str]:
        """Lines of every worker's log that match `pattern` (a regular expression)."""
        wanted = re.compile(pattern)
        return [
            f"{worker.log.name}: {line}"
            for worker in [*self.workers, *self.retired]
            for line in worker.log.read_text(errors="replace").splitlines()
            if wanted.search(line)
        ]


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)$")


def parse_metrics(exposition: str) -> dict[str, float]:
    """Prometheus text format → {'name{labels}': value} (comments left out)."""
    samples = {}
    for line in exposition.splitlines():
        found = _SAMPLE.match(line.strip())
        if found:
            samples[found.group(1)] = float(found.group(2))
    return samples


def sent_counter(samples: dict[str, float]) -> float:
    """The process's worker count of messages the provider accepted."""
    return samples.get('mailramp_sends_total{result="sent"}', 0.0)


def status_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts
