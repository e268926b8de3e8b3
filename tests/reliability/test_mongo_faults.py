"""A MongoDB outage at every point of a sending worker's pass (docs/deployment.md, MongoDB).

A worker sends the first email of a two-step campaign to three people through a real SMTP
server on loopback — one address refused with 550, so the pass writes a bounce, its
suppression and the end of that person's sequence. The store is the MongoDB adapter on the
in-process double, which fails one call of the pass with one of PyMongo's own exceptions,
as a replica set does during an election or a write concern timeout: *before* the call
(the server never saw it) or *after* it (applied, and the answer lost). Every call of the
pass is failed in turn, both ways, from the claim through the `sending` mark to the last
write of `record_results`.

What a user must see, whatever the point: each accepted address got exactly one email, the
refused one none; every first email ends `sent` or `bounced` (none `uncertain`, none sent
twice), each with exactly one event; the follow-ups of the people sent to are due, the
refused person's stopped and suppressed; no record still owes consequences; and the
campaign's counters equal their recount from the event log.

A worker that dies mid-`record_results` (nothing it would write afterwards reaches the
database) is repaired by the reconciliation: its owed outcomes completed, counters right.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

import pytest
from pymongo.errors import (
    AutoReconnect,
    NotPrimaryError,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

from mailramp.campaigns.models import Campaign
from mailramp.errors import DatabaseUnavailableError
from mailramp.kit.secrets import SecretBox, generate_key
from mailramp.metrics.models import COUNTERS
from mailramp.sending.reconcile import OWED_GRACE, Reconciler
from mailramp.storage.mongo import MongoStore
from mailramp.storage.mongo.codec import EVENTS, OWED, SUPPRESSIONS, TRACKING
from tests.conftest import services_on
from tests.sending.conftest import START, World
from tests.support.clock import FakeClock
from tests.support.mongo_double import WRITES, Fault, Faults, mock_database
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.reliability

PEOPLE = "email,first_name\nalice@example.com,Alice\nbob@example.com,Bob\ncarol@example.com,Carol\n"
ACCEPTED = ("alice@example.com", "bob@example.com")
REFUSED = "carol@example.com"
FOLLOW_UP = [{"delay_days": 2, "message": "Hi {{first_name}}, did you see my note?"}]
DATABASES = itertools.count(1)

# PyMongo's own exceptions, as a replica set raises them. Before a call: the server was not
# reached (no primary, an election under way). After a write: it was applied and its
# answer lost (the connection closed by a stepping-down primary, a majority that did not
# acknowledge in time).
BEFORE: list[Callable[[], PyMongoError]] = [
    lambda: NotPrimaryError("not primary", {"code": 10107, "errmsg": "not primary"}),
    lambda: ServerSelectionTimeoutError("No primary available for writes, Timeout: 10.0s"),
    lambda: AutoReconnect("connection pool paused"),
]
AFTER: list[Callable[[], PyMongoError]] = [
    lambda: AutoReconnect("connection closed: primary stepped down"),
    lambda: WriteConcernError(
        "waiting for replication timed out", 64, {"errInfo": {"wtimeout": True}}
    ),
]


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(accounts={"ann@acme.com": "smtp-password"}).start()
    server.inbox.rcpt_replies[REFUSED].append("550 5.1.1 no such user here!")
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Case:
    world: World
    faults: Faults
    campaign: Campaign

    @property
    def store(self) -> MongoStore:
        assert isinstance(self.world.store, MongoStore)
        return self.world.store

    def raw(self, collection: str) -> Any:
        return self.store.database[collection]


async def prepare(smtp: SmtpServer) -> Case:
    """A campaign of three, its first emails due now; the double failing nothing yet."""
    smtp.inbox.messages.clear()
    faults = Faults()
    store = MongoStore(mock_database(f"faults_{next(DATABASES)}", faults))
    await store.migrate()
    services = services_on(store, SecretBox([generate_key()]), FakeClock(START))
    world = World(**{f.name: getattr(services, f.name) for f in fields(services)}, smtp=smtp)
    user, mailbox = await world.sender()
    campaign, report = await world.campaign(
        user, mailbox, PEOPLE, duration=24 * 7, campaign_steps=FOLLOW_UP
    )
    assert report.accepted == 3
    case = Case(world, faults, campaign)
    due = world.clock.now - timedelta(seconds=1)
    await case.raw(TRACKING).update_many({"step": 1}, {"$set": {"scheduled_at": due}})
    faults.calls.clear()
    return case


async def drive(case: Case) -> None:
    """Worker passes until every first email is final, as `mailramp worker` runs them:
    an outage ends a pass; time moves on past the lease when nothing is left to do now."""
    worker = case.world.worker(poll_seconds=0.01)
    try:
        for _ in range(12):
            try:
                handled = await worker.tick()
            except DatabaseUnavailableError:
                continue
            if handled == 0:
                if (
                    await case.raw(TRACKING).count_documents(
                        {"step": 1, "status": {"$in": ["pending", "sending", "uncertain"]}}
                    )
                    == 0
                ):
                    return
                case.world.clock.now += timedelta(seconds=121)  # past the 120 s lease
    finally:
        await worker.close()


async def pass_calls(smtp: SmtpServer) -> list[tuple[str, str]]:
    """Every database call a fault-free worker pass makes, in order."""
    case = await prepare(smtp)
    worker = case.world.worker(poll_seconds=0.01)
    assert await worker.tick() == 3
    await worker.close()
    return list(case.faults.calls)


EVERY_OUTCOME = {**dict.fromkeys(ACCEPTED, "sent"), REFUSED: "bounced"}
FOLLOW_UP_AFTER = {"sent": "pending", "bounced": "stopped", "uncertain": "waiting"}
EVENT_OF = {"sent": ["sent"], "bounced": ["bounce"], "uncertain": []}


async def check(case: Case, point: str, outcomes: dict[str, str] = EVERY_OUTCOME) -> None:
    """What a user must see after the pass, whatever failed in it: each first email ended
    as `outcomes` says (by default: sent, or bounced for the refused address)."""
    counts = case.world.smtp.inbox.count_by_recipient()
    assert counts == dict.fromkeys(ACCEPTED, 1), point
    firsts = {
        document["recipient_email"]: document
        async for document in case.raw(TRACKING).find({"step": 1})
    }
    status = {address: document["status"] for address, document in firsts.items()}
    assert status == outcomes, point
    for address, document in firsts.items():
        kinds = [
            event["type"]
            async for event in case.raw(EVENTS).find(
                {"record_id": document["_id"], "type": {"$in": ["sent", "bounce"]}}
            )
        ]
        assert kinds == EVENT_OF[outcomes[address]], (point, address)
    follow_ups = {
        document["recipient_email"]: document["status"]
        async for document in case.raw(TRACKING).find({"step": 2})
    }
    assert follow_ups == {a: FOLLOW_UP_AFTER[o] for a, o in outcomes.items()}, point
    # The refused person's follow-up was stopped once, and the log says so once.
    stops = await case.raw(EVENTS).count_documents({"type": "stopped"})
    assert stops == int(outcomes[REFUSED] == "bounced"), point
    suppressed = await case.raw(SUPPRESSIONS).count_documents({"email": REFUSED})
    assert suppressed == int(outcomes[REFUSED] == "bounced"), point
    assert await case.raw(TRACKING).count_documents({OWED: {"$exists": True}}) == 0, point
    stored = await case.store.get_metrics_unscoped(case.campaign.campaign_id)
    recounted = await case.store.recompute_metrics(
        case.campaign.campaign_id, now=case.world.clock.now
    )
    assert stored is not None and recounted is not None
    assert {name: getattr(stored, name) for name in COUNTERS} == {
        name: getattr(recounted, name) for name in COUNTERS
    }, point
    sent = sum(outcome != "uncertain" for outcome in outcomes.values())
    bounced = int(outcomes[REFUSED] == "bounced")
    assert (recounted.total_sent, recounted.total_bounced) == (sent, bounced), point


def faults_for(call: tuple[str, str], n: int) -> list[tuple[str, Callable[[], PyMongoError], bool]]:
    """(label, error, after) for the call: before it always, after it too for a write."""
    collection, method = call
    plans = [(f"{collection}.{method} fails before", BEFORE[n % len(BEFORE)], False)]
    if method in WRITES:
        plans.append((f"{collection}.{method} applied, answer lost", AFTER[n % len(AFTER)], True))
    return plans


async def test_an_outage_at_any_point_of_a_pass_loses_and_duplicates_nothing(
    smtp_server: SmtpServer,
) -> None:
    calls = await pass_calls(smtp_server)
    writes = [call for call in calls if call[1] in WRITES]
    # The pass claims, marks, sends and records: dozens of calls, a third of them writes.
    assert ("email_tracking", "find_one_and_update") in writes
    assert len(calls) >= 20
    tried = 0
    for n, call in enumerate(calls):
        for label, error, after in faults_for(call, n):
            case = await prepare(smtp_server)
            fault = case.faults.add(Fault(method="*", nth=n + 1, error=error(), after=after))
            await drive(case)
            point = f"call {n + 1} of {len(calls)} ({label}: {type(fault.error).__name__})"
            assert fault.fired, point
            await check(case, point)
            tried += 1
    print(f"\n{tried} faults at {len(calls)} calls ({len(writes)} writes): all survived")


class Died(Exception):
    """The worker process died here: nothing it would write afterwards arrives."""


def outcome_change(args: tuple[Any, ...], _: dict[str, Any]) -> bool:
    """Whether a call is `record_results` changing a record (its update writes what the
    outcome owes)."""
    update = args[1] if len(args) > 1 else {}
    return isinstance(update, dict) and OWED in update.get("$set", {})


@pytest.mark.parametrize("nth", [1, 2, 3])
async def test_a_worker_dying_after_an_outcome_is_repaired_by_the_reconciliation(
    smtp_server: SmtpServer, nth: int
) -> None:
    case = await prepare(smtp_server)
    case.faults.add(
        Fault(
            method="find_one_and_update",
            when=outcome_change,
            nth=nth,
            after=True,
            error=Died("killed"),
            kills=True,
        )
    )
    worker = case.world.worker(poll_seconds=0.01)
    with pytest.raises(Died):
        await worker.tick()
    await worker.close()  # what the process's end does to its connections
    case.faults.revive()
    owing = [d async for d in case.raw(TRACKING).find({OWED: {"$exists": True}})]
    # The batch's changed records owe until its end (the last one: its consequences were
    # never written).
    assert len(owing) == nth
    # What the dead worker had recorded stays; the other emails it had in flight left
    # (the server took them) with nobody to say so: they end `uncertain`, never resent.
    recorded = {d["recipient_email"]: d["status"] for d in await _firsts(case)}
    outcomes = {
        address: outcome if recorded[address] == outcome else "uncertain"
        for address, outcome in EVERY_OUTCOME.items()
    }
    assert list(outcomes.values()).count("uncertain") == 3 - nth
    # A new worker leaves it alone (it is no longer `sending`), the reconciliation completes it.
    case.world.clock.now += OWED_GRACE + timedelta(seconds=1)
    reconciled = await Reconciler(case.store, clock=case.world.clock).run_once()
    assert reconciled.outcomes_completed == nth
    await drive(case)
    await check(case, f"died after outcome {nth}", outcomes)


async def _firsts(case: Case) -> list[dict[str, Any]]:
    return [document async for document in case.raw(TRACKING).find({"step": 1})]
