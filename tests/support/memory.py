"""Memory of a server process, read from /proc: its peak resident size during a block."""

from __future__ import annotations

import threading
from pathlib import Path


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


class PeakMemory:
    """The server's peak resident memory during a block, above what it held before: the
    kernel's high-water mark, reset first (Linux clear_refs); where that is not allowed,
    the resident size sampled every 5 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.growth_kib = 0
        self._samples: list[int] = []
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        self.before_kib = _status_kib(self.pid, "VmRSS")
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self._exact = True
        except OSError:
            self._exact = False
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self._samples.append(_status_kib(self.pid, "VmRSS"))

    def __exit__(self, *_: object) -> None:
        if self._exact:
            peak = _status_kib(self.pid, "VmHWM")
        else:
            self._stop.set()
            self._thread.join()
            peak = max([*self._samples, _status_kib(self.pid, "VmRSS")])
        self.growth_kib = max(peak - self.before_kib, 0)
