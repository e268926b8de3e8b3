"""A job the worker runs every so often: at once, then every interval; a failing pass is
logged and the next runs on time; a database outage is one line when it goes and one
when it is back; stop() ends it between passes."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mailramp.errors import DatabaseUnavailableError
from mailramp.kit.periodic import Periodic


async def test_a_job_runs_at_once_then_again_and_survives_its_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    passes: list[int] = []
    outcomes = iter(
        [
            None,
            RuntimeError("boom"),
            DatabaseUnavailableError("gone"),
            DatabaseUnavailableError("gone"),
            None,
        ]
    )

    async def job() -> None:
        passes.append(len(passes))
        outcome = next(outcomes, None)
        if outcome is not None:
            raise outcome
        if len(passes) == 5:
            periodic.stop()

    periodic = Periodic("checks", job, interval_seconds=0.01)
    with caplog.at_level(logging.WARNING, logger="mailramp.kit.periodic"):
        await asyncio.wait_for(periodic.run(), timeout=10)

    assert passes == [0, 1, 2, 3, 4]
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == "checks failed; trying again in 0 s"
    assert [m for m in messages if "database" in m or "gone" in m] == [
        "checks: gone; waiting for it",
        "checks: the database answers again",
    ]


async def test_stop_ends_the_wait_between_passes() -> None:
    passes: list[None] = []

    async def job() -> None:
        passes.append(None)

    periodic = Periodic("checks", job, interval_seconds=3600)
    running = asyncio.create_task(periodic.run())
    await asyncio.sleep(0.05)
    periodic.stop()
    await asyncio.wait_for(running, timeout=5)
    assert passes == [None]
