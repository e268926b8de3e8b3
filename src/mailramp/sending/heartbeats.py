"""Which sending workers are running: each records a heartbeat (who it is, where, which
version, since when, its last pass, the records it holds) and is shown as alive, stopped
(it said goodbye) or gone (silent for GONE_AFTER_LEASES of its leases: killed, its host
down, or stuck) — `mailramp worker list`, `/healthz`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.types import UTCDateTime

GONE_AFTER_LEASES = 3
"""Leases a worker may stay silent before it is shown as gone: its claims have long run out
by then (one lease), so a worker this quiet holds nothing and sends nothing."""

BEAT_EVERY = timedelta(seconds=15)
"""How often an idle worker records that it is still there, at most (a pass that claims
something beats at once); never less often than every half lease (`beat_interval`), so a
live worker is never shown as gone."""

FORGET_AFTER = timedelta(days=7)
"""Heartbeats of workers stopped or gone this long ago are deleted."""


def beat_interval(lease_seconds: float) -> float:
    """Seconds between an idle worker's heartbeats."""
    return min(BEAT_EVERY.total_seconds(), lease_seconds / 2)


class WorkerState(StrEnum):
    ALIVE = "alive"
    STOPPED = "stopped"
    GONE = "gone"


class WorkerHeartbeat(BaseModel):
    """The last thing a worker said about itself."""

    model_config = ConfigDict(frozen=True)

    worker_id: str
    host: str
    pid: int
    version: str
    lease_seconds: float
    started_at: UTCDateTime
    beat_at: UTCDateTime
    last_pass_at: UTCDateTime | None = None
    held: int = 0
    stopped_at: UTCDateTime | None = None

    def state(self, now: datetime) -> WorkerState:
        """Alive, stopped (it said so), or gone (silent for GONE_AFTER_LEASES leases)."""
        if self.stopped_at is not None:
            return WorkerState.STOPPED
        silent = now - self.beat_at
        gone = silent > timedelta(seconds=GONE_AFTER_LEASES * self.lease_seconds)
        return WorkerState.GONE if gone else WorkerState.ALIVE


def counts(beats: Sequence[WorkerHeartbeat], now: datetime) -> dict[str, int]:
    """How many workers are in each state (every state named, 0 included)."""
    found = {state.value: 0 for state in WorkerState}
    for beat in beats:
        found[beat.state(now).value] += 1
    return found


class HeartbeatStore(Protocol):
    async def list_heartbeats(self) -> list[WorkerHeartbeat]: ...


@dataclass(frozen=True)
class WorkerStatus:
    """A worker as an operator sees it now."""

    heartbeat: WorkerHeartbeat
    state: WorkerState


class WorkerDirectory:
    """The workers that ran lately, and what each is now (`mailramp worker list`,
    `/healthz`)."""

    def __init__(self, store: HeartbeatStore, *, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    async def list(self) -> list[WorkerStatus]:
        now = self._clock()
        return [WorkerStatus(beat, beat.state(now)) for beat in await self._store.list_heartbeats()]

    async def counts(self) -> dict[str, int]:
        """How many workers are alive, stopped and gone."""
        return counts([status.heartbeat for status in await self.list()], self._clock())
