"""Deciding opens and clicks in tests as a worker does once their settling window has
passed (tracking/classify.py): a runtime whose clock is one window ahead of now settles
everything made until now."""

from __future__ import annotations

from datetime import timedelta

from mailramp.config import Settings
from mailramp.kit.clock import utc_now
from mailramp.runtime import open_runtime


async def settle_now(settings: Settings) -> int:
    """Decide every open and click made so far; how many were decided."""
    ahead = timedelta(seconds=settings.settle_seconds + 1)
    runtime = await open_runtime(settings, clock=lambda: utc_now() + ahead)
    try:
        decided = 0
        while made := await runtime.tracking.settle():
            decided += made
        return decided
    finally:
        await runtime.close()
