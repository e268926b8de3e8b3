"""Loaded by every Python process of a test run under `faketime` (scripts/test puts this
folder on PYTHONPATH when libfaketime is preloaded), so the suite can run with the system
clock moved years ahead.

Debian's libfaketime 0.9.10 needs two things from a Python 3.11 process:

- the monotonic clock left alone (FAKETIME_DONT_FAKE_MONOTONIC=1, set by scripts/test):
  0.9.10 does not intercept `sem_clockwait`, which Python's locks use for timeouts, so with a
  faked monotonic clock every `Event.wait(timeout)` or `Queue.get(timeout=…)` waits years;
- `time.sleep` without `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`: with the monotonic
  clock left alone, 0.9.10 still shifts that absolute deadline and the kernel answers EINVAL
  (libfaketime issue #426, fixed after 0.9.10). `select` with a relative timeout is not
  shifted, so sleeping goes through it here.

Outside faketime this module does nothing.
"""

from __future__ import annotations

import os
import select
import time


def _sleep(seconds: float) -> None:
    """`time.sleep` through `select`'s relative timeout, to the same monotonic deadline."""
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([], [], [], left)


if "faketime" in os.environ.get("LD_PRELOAD", ""):
    time.sleep = _sleep
