"""A job the worker runs every so often (domain checks, warm-up, brakes) until stopped: a
failing pass is logged and the next one runs on time; a database outage is one line when it
goes and one when it is back, not a traceback a pass."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from mailramp.errors import DatabaseUnavailableError

log = logging.getLogger(__name__)


class Periodic:
    """Runs `job` now and then every `interval_seconds` until `stop()`."""

    def __init__(
        self, name: str, job: Callable[[], Awaitable[object]], *, interval_seconds: float
    ) -> None:
        self.name = name
        self._job = job
        self._interval = interval_seconds
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        database_lost = False
        while not self._stopping.is_set():
            try:
                await self._job()
            except DatabaseUnavailableError as error:
                if not database_lost:
                    log.warning("%s: %s; waiting for it", self.name, error.message)
                database_lost = True
            except Exception:
                log.exception("%s failed; trying again in %.0f s", self.name, self._interval)
            else:
                if database_lost:
                    log.warning("%s: the database answers again", self.name)
                database_lost = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._interval)
