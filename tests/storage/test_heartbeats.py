"""Workers' heartbeats on every backend: the last one per worker kept, listed newest first,
forgotten when old; what each says about the worker's state (sending/heartbeats.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailramp.runtime import Services
from mailramp.sending.heartbeats import WorkerHeartbeat, WorkerState, counts

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def beat(worker_id: str, at: datetime, **fields: object) -> WorkerHeartbeat:
    values: dict[str, object] = {
        "worker_id": worker_id,
        "host": "mail-1",
        "pid": 4242,
        "version": "0.1.0+gabc",
        "lease_seconds": 120.0,
        "started_at": NOW,
        "beat_at": at,
    }
    return WorkerHeartbeat.model_validate(values | fields)


async def test_the_last_heartbeat_of_each_worker_is_kept_and_old_ones_forgotten(
    services: Services,
) -> None:
    store = services.store
    assert await store.list_heartbeats() == []
    await store.record_heartbeat(beat("mail-1:4242:aaaaaa", NOW))
    later = beat("mail-1:4242:aaaaaa", NOW + timedelta(seconds=15), held=7,
                 last_pass_at=NOW + timedelta(seconds=14))  # fmt: skip
    await store.record_heartbeat(later)
    other = beat("mail-2:17:bbbbbb", NOW + timedelta(seconds=5), host="mail-2", pid=17)
    await store.record_heartbeat(other)
    assert await store.list_heartbeats() == [later, other]  # one each, newest first
    stopped = later.model_copy(update={"stopped_at": NOW + timedelta(minutes=1)})
    await store.record_heartbeat(stopped)
    assert (await store.list_heartbeats())[0].stopped_at == NOW + timedelta(minutes=1)
    assert await store.forget_heartbeats(before=NOW + timedelta(seconds=10)) == 1
    assert [b.worker_id for b in await store.list_heartbeats()] == ["mail-1:4242:aaaaaa"]


def test_a_worker_silent_for_three_leases_is_gone() -> None:
    alive = beat("a", NOW)
    assert alive.state(NOW + timedelta(seconds=360)) is WorkerState.ALIVE  # 3 leases exactly
    assert alive.state(NOW + timedelta(seconds=360.001)) is WorkerState.GONE
    stopped = beat("b", NOW, stopped_at=NOW)
    assert stopped.state(NOW + timedelta(days=1)) is WorkerState.STOPPED
    short = beat("c", NOW, lease_seconds=2.0)  # each worker's own lease decides
    assert short.state(NOW + timedelta(seconds=7)) is WorkerState.GONE
    assert counts([alive, stopped, short], NOW + timedelta(seconds=7)) == {
        "alive": 1,
        "stopped": 1,
        "gone": 1,
    }
