"""The MongoDB adapter as a real deployment fails (issue 27), on the in-process double with
faults (tests/support/mongo_double.py): PyMongo's own exceptions at chosen calls, and other
processes' operations landing between two of ours. The worker's side of it — an outage at
every call of a pass — is tests/reliability/test_mongo_faults.py.

The options a real client is given (timeouts, the send write concern) are read from real
PyMongo objects; an unreachable server is a real one (a closed port)."""

from __future__ import annotations

import asyncio
import gc
import io
import itertools
import socket
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from pymongo import ReadPreference
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

from mailramp.campaigns.repository import Slot
from mailramp.errors import ConfigurationError, DatabaseUnavailableError, DuplicateError
from mailramp.kit.ids import new_object_id
from mailramp.kit.secrets import SecretBox, generate_key
from mailramp.metrics.models import COUNTERS
from mailramp.runtime import Services
from mailramp.sending.models import Outcome, SendResult
from mailramp.sending.reconcile import RECONCILE_INTERVAL, Reconciled, Reconciler
from mailramp.sending.repository import Lease
from mailramp.storage.mongo import MongoStore
from mailramp.storage.mongo.client import open_database
from mailramp.storage.mongo.codec import (
    EVENTS,
    METRICS,
    OWED,
    RECIPIENTS,
    SUPPRESSIONS,
    TRACKING,
    USERS,
)
from mailramp.storage.mongo.indexes import INDEXES
from mailramp.tracking.events import OPEN
from mailramp.tracking.models import EmailEvent, EmailTracking, EventType
from mailramp.tracking.repository import EventChange
from tests.conftest import make_campaign, make_email, make_mailbox, make_user, services_on
from tests.support.clock import FakeClock
from tests.support.mongo_double import Fault, Faults, mock_database

DATABASES = itertools.count(1)
SCHEMA_LAYOUT = (
    "_id",
    "campaign_id",
    "user_id",
    "mailbox_id",
    "total_sent",
    "total_delivered",
    "total_opened",
    "total_clicks",
    "total_bounced",
    "total_replied",
    "total_unsubscribed",
    "open_rate",
    "click_rate",
    "bounce_rate",
    "reply_rate",
    "created_at",
    "last_updated",
)
"""campaign_matrix as the schema lists it (the previous application's documents)."""


@dataclass
class Double:
    services: Services
    faults: Faults

    @property
    def store(self) -> MongoStore:
        assert isinstance(self.services.store, MongoStore)
        return self.services.store

    def raw(self, collection: str) -> Any:
        return self.store.database[collection]


@pytest.fixture
async def double() -> Double:
    faults = Faults()
    store = MongoStore(mock_database(f"faults_{next(DATABASES)}", faults))
    await store.migrate()
    faults.calls.clear()
    return Double(services_on(store, SecretBox([generate_key()]), FakeClock()), faults)


async def sent(double: Double, count: int, **campaign: object) -> list[EmailTracking]:
    """`count` emails of a new active campaign, claimed, marked and sent."""
    services, store = double.services, double.store
    now = services.clock()
    user = await make_user(services)
    made = await make_campaign(
        services, user, await make_mailbox(services, user), start_time=now, **campaign
    )
    records = [make_email(made, f"p{n}@example.com", scheduled_at=now) for n in range(count)]
    await store.insert_tracking(records)
    await store.run_lifecycle(now=now)
    lease = Lease("w1", now, now + timedelta(minutes=2))
    claimed = await store.claim_due(lease, limit=count)
    await store.start_sending(lease, {r.id: f"<{r.id}@x>" for r in claimed})
    await store.record_results([SendResult.of(r, Outcome.SENT) for r in claimed], now=now)
    return records


def counters(metrics: Any) -> dict[str, int]:
    return {name: getattr(metrics, name) for name in COUNTERS}


# -- a campaign_matrix document in the schema's own layout (item 5) --------------------------


async def test_a_metrics_document_in_the_schemas_seven_counter_layout_is_counted_once(
    double: Double,
) -> None:
    records = await sent(double, 2)
    campaign_id = records[0].campaign_id
    document = await double.raw(METRICS).find_one({"campaign_id": campaign_id})
    await double.raw(METRICS).replace_one(
        {"_id": document["_id"]}, {name: document[name] for name in SCHEMA_LAYOUT}
    )
    double.faults.calls.clear()
    metrics = await asyncio.wait_for(
        double.store.increment_metrics(
            campaign_id, {"total_opened": 1}, at=double.services.clock()
        ),
        timeout=10,
    )
    assert metrics is not None
    assert (metrics.total_sent, metrics.total_opened, metrics.total_human_opened) == (2, 1, 0)
    assert metrics.open_rate == 50.0
    # Once: the `$inc`, then the derived fields and the missing counters in one write.
    assert double.faults.writes() == [(METRICS, "find_one_and_update")] * 2
    stored = await double.raw(METRICS).find_one({"campaign_id": campaign_id})
    assert all(stored[name] == getattr(metrics, name) for name in COUNTERS)


async def test_migrate_gives_a_schema_layout_document_every_counter(double: Double) -> None:
    records = await sent(double, 1)
    raw = double.raw(METRICS)
    document = await raw.find_one({"campaign_id": records[0].campaign_id})
    await raw.replace_one({"_id": document["_id"]}, {n: document[n] for n in SCHEMA_LAYOUT})
    await double.store.migrate()
    stored = await raw.find_one({"_id": document["_id"]})
    assert {name: stored[name] for name in COUNTERS} == {
        **dict.fromkeys(COUNTERS, 0),
        "total_sent": 1,
        "total_delivered": 1,
    }


# -- every operation maps an outage (item 1) ---------------------------------------------------

OUTAGES: list[Callable[[], PyMongoError]] = [
    lambda: AutoReconnect("connection reset by peer"),
    lambda: NotPrimaryError("not primary", {"code": 10107, "errmsg": "not primary"}),
    lambda: ServerSelectionTimeoutError("No primary available for writes, Timeout: 10.0s"),
    lambda: NetworkTimeout("timed out"),
    lambda: ExecutionTimeout("operation exceeded time limit", 50),
    lambda: WriteConcernError("waiting for replication timed out", 64, {}),
    lambda: OperationFailure("Primary stepped down", 189),
    lambda: OperationFailure("interrupted at shutdown", 11600),
]


async def _operations(double: Double) -> dict[str, Callable[[], Any]]:
    services, store = double.services, double.store
    user = await make_user(services)
    campaign = await make_campaign(services, user, await make_mailbox(services, user))
    return {
        "find_one": lambda: store.get_user(user.user_id),
        "find (cursor)": lambda: store.list_suppressions(user.user_id),
        "count_documents": lambda: store.list_unmatched(user.user_id),
        "aggregate": lambda: store.event_series(user.user_id, campaign.campaign_id),
        "insert_one": lambda: services.accounts.create_user(user_name="B", login_id="b1"),
        "find_one_and_update": lambda: store.increment_metrics(
            campaign.campaign_id, {"total_sent": 1}, at=services.clock()
        ),
        "command": lambda: store.ping(),
    }


@pytest.mark.parametrize("make_error", OUTAGES, ids=lambda make: type(make()).__name__)
async def test_every_operation_reports_an_outage_as_database_unavailable(
    double: Double, make_error: Callable[[], PyMongoError]
) -> None:
    operations = await _operations(double)
    for name, operation in operations.items():
        fault = double.faults.add(Fault(method="*", error=make_error()))
        with pytest.raises(DatabaseUnavailableError) as raised:
            await operation()
        assert fault.fired, name
        assert raised.value.message.startswith("the database is unreachable (mongodb): "), name
        assert "Traceback" not in raised.value.message and "\n" not in raised.value.message
    # And then it answers again.
    assert await operations["find_one"]() is not None


async def test_a_write_concern_the_deployment_cannot_satisfy_is_a_setting_to_fix(
    double: Double,
) -> None:
    user = await make_user(double.services)
    refusal = WriteConcernError("Not enough data-bearing nodes", 100, {})
    double.faults.add(Fault(method="find_one_and_update", error=refusal))
    with pytest.raises(ConfigurationError, match="MAILRAMP_MONGODB_WRITE_CONCERN"):
        await double.store.update_user(user.user_id, {"user_name": "Ann"})
    double.faults.add(Fault(method="find_one", error=OperationFailure("cursor id not found", 43)))
    with pytest.raises(DatabaseUnavailableError):  # a cursor lost in a failover
        await double.store.get_user(user.user_id)


async def test_a_statement_error_stays_what_it_is(double: Double) -> None:
    user = await make_user(double.services)
    double.faults.add(Fault(method="find_one", error=OperationFailure("unknown operator", 2)))
    with pytest.raises(OperationFailure):
        await double.store.get_user(user.user_id)
    with pytest.raises(DuplicateError) as duplicate:  # the server's own refusal
        await make_user(double.services, login_id=user.login_id)
    assert duplicate.value.field == "login_id"
    assert not isinstance(DuplicateKeyError("E11000"), DatabaseUnavailableError)


@pytest.fixture
async def real_driver() -> AsyncIterator[None]:
    """For a test that opens PyMongo's own client towards a port where nothing listens: the
    driver's background monitor may leave the socket of an attempt in flight at `close()`
    to the garbage collector, whose ResourceWarning would then fail whichever test it
    happens in. It is collected here, at the end of the test that made it."""
    yield
    await asyncio.sleep(0.05)  # the monitor's cancelled tasks finish
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.mark.usefixtures("real_driver")
async def test_a_real_driver_against_a_closed_port_is_unavailable_quickly() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens
    store = MongoStore.from_url(f"mongodb://127.0.0.1:{port}/x?serverSelectionTimeoutMS=300")
    try:
        for call in (store.ping, lambda: store.get_user(new_object_id())):
            with pytest.raises(DatabaseUnavailableError) as raised:
                await call()
            assert f"127.0.0.1:{port}" in raised.value.message
    finally:
        await store.close()


# -- write concern, read preference and timeouts (items 2 and 8) ------------------------------


@pytest.mark.usefixtures("real_driver")
async def test_writes_are_majority_and_journaled_and_reads_primary_whatever_the_url_says() -> None:
    url = "mongodb://127.0.0.1:1/x?w=1&journal=false&readPreference=secondaryPreferred"
    store = MongoStore.from_url(url)
    try:
        for collection in (TRACKING, METRICS, EVENTS, SUPPRESSIONS):
            used = store._db[collection]  # what every query method of the adapter goes through
            assert used.write_concern.document == {"w": "majority", "j": True, "wtimeout": 10000}
            assert used.read_preference == ReadPreference.PRIMARY
        # The URL's own choice is still what the client says (and all the adapter overrides).
        assert store.database[TRACKING].write_concern.document == {"w": 1, "j": False}
    finally:
        await store.close()
    knowingly = MongoStore.from_url(url, write_concern="1")
    try:
        assert knowingly._db[TRACKING].write_concern.document == {
            "w": 1,
            "j": True,
            "wtimeout": 10000,
        }
    finally:
        await knowingly.close()


@pytest.mark.usefixtures("real_driver")
async def test_a_client_waits_bounded_times_unless_the_url_says_otherwise() -> None:
    client, _ = open_database("mongodb://127.0.0.1:1/x")
    try:
        options = client.options
        assert options.server_selection_timeout == 10.0
        assert options.pool_options.connect_timeout == 5.0
        assert options.pool_options.socket_timeout == 60.0
        assert options.pool_options.wait_queue_timeout == 10.0
    finally:
        await client.close()
    client, _ = open_database("mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=2500")
    try:
        assert client.options.server_selection_timeout == 2.5
    finally:
        await client.close()


# -- counters never over-count; suppressions are never lost (item 4) --------------------------


def _open(record: EmailTracking, at: Any) -> EmailEvent:
    return EmailEvent(
        id=new_object_id(),
        record_id=record.id,
        campaign_id=record.campaign_id,
        user_id=record.user_id,
        recipient_email=record.recipient_email,
        type=EventType.OPEN,
        occurred_at=at,
        machine=True,
        machine_reason="apple_mpp",
    )


def increments(counter: str) -> Callable[[tuple[Any, ...], dict[str, Any]], bool]:
    def check(args: tuple[Any, ...], _: dict[str, Any]) -> bool:
        return len(args) > 1 and counter in args[1].get("$inc", {})

    return check


async def test_a_recount_between_an_open_and_its_increment_never_counts_it_twice(
    double: Double,
) -> None:
    records = await sent(double, 2)
    campaign_id, store, now = records[0].campaign_id, double.store, double.services.clock()

    async def recount() -> None:  # another process, just before our `$inc`
        recounted = await store.recompute_metrics(campaign_id, now=now)
        assert recounted is not None and recounted.total_opened == 1  # the log has the open

    race = double.faults.add(
        Fault(
            method="find_one_and_update",
            collection=METRICS,
            when=increments("total_opened"),
            run=recount,
        )
    )
    deltas = await store.record_event(_open(records[0], now), EventChange(firsts=OPEN.firsts))
    assert race.fired and deltas == {"total_opened": 1}
    metrics = await store.get_metrics_unscoped(campaign_id)
    assert metrics is not None and metrics.total_opened == 1
    assert counters(metrics) == counters(await store.recompute_metrics(campaign_id, now=now))


async def test_recounts_and_events_in_any_order_leave_counters_equal_to_the_log(
    double: Double,
) -> None:
    records = await sent(double, 6)
    campaign_id, store, now = records[0].campaign_id, double.store, double.services.clock()

    async def recount() -> None:
        await store.recompute_metrics(campaign_id, now=now)

    # A recount lands before each open's `$inc`, and others run beside the opens.
    for n in range(1, 4):
        double.faults.add(
            Fault(
                method="find_one_and_update",
                collection=METRICS,
                when=increments("total_opened"),
                nth=n,
                run=recount,
            )
        )
    await asyncio.gather(
        *(
            store.record_event(_open(record, now), EventChange(firsts=OPEN.firsts))
            for record in records
        ),
        recount(),
        recount(),
    )
    metrics = await store.get_metrics_unscoped(campaign_id)
    assert metrics is not None and metrics.total_opened == 6
    assert counters(metrics) == counters(await store.recompute_metrics(campaign_id, now=now))


async def test_a_bounce_whose_answer_was_lost_keeps_its_suppression_and_completes_on_retry(
    double: Double,
) -> None:
    services, store = double.services, double.store
    now = services.clock()
    user = await make_user(services)
    campaign = await make_campaign(
        services,
        user,
        await make_mailbox(services, user),
        start_time=now,
        duration=24 * 7,
        campaign_steps=[{"delay_days": 2, "message": "Again"}],
    )
    first = make_email(campaign, "gone@example.com", scheduled_at=now)
    second = make_email(campaign, "gone@example.com", step=2, status="waiting")
    await store.insert_tracking([first, second])
    await store.run_lifecycle(now=now)
    lease = Lease("w1", now, now + timedelta(minutes=2))
    [claimed] = await store.claim_due(lease, limit=5)
    await store.start_sending(lease, {claimed.id: "<m@x>"})
    bounce = SendResult.of(claimed, Outcome.BOUNCED, "550 5.1.1 no such user")
    # The record's change is applied, and its answer lost (a primary stepping down).
    double.faults.add(
        Fault(
            method="find_one_and_update",
            collection=TRACKING,
            after=True,
            when=lambda args, _: OWED in args[1].get("$set", {}),
            error=AutoReconnect("connection closed"),
        )
    )
    with pytest.raises(DatabaseUnavailableError):
        await store.record_results([bounce], now=now)
    # Written before the record changed: nothing after the change could bring it back.
    assert await double.raw(SUPPRESSIONS).count_documents({"email": "gone@example.com"}) == 1
    changed = await store.get_tracking_unscoped(first.id)
    assert changed is not None and changed.status == "bounced"
    # The worker stores the same result again once the database answers.
    await store.record_results([bounce], now=now + timedelta(seconds=3))
    await store.record_results([bounce], now=now + timedelta(seconds=9))  # a repeat: nothing
    follow_up = await store.get_tracking_unscoped(second.id)
    assert follow_up is not None and follow_up.status == "stopped"
    kinds = [
        event["type"]
        async for event in double.raw(EVENTS).find({"campaign_id": campaign.campaign_id})
    ]
    assert sorted(kinds) == ["bounce", "queued", "queued", "stopped"]
    assert await double.raw(TRACKING).count_documents({OWED: {"$exists": True}}) == 0
    metrics = await store.get_metrics_unscoped(campaign.campaign_id)
    assert metrics is not None and (metrics.total_sent, metrics.total_bounced) == (1, 1)


async def test_a_retry_stored_again_never_takes_a_record_back_from_another_worker(
    services: Services,
) -> None:
    store, now = services.store, services.clock()
    user = await make_user(services)
    campaign = await make_campaign(
        services, user, await make_mailbox(services, user), start_time=now
    )
    await store.insert_tracking([make_email(campaign, "p@example.com", scheduled_at=now)])
    await store.run_lifecycle(now=now)
    first = Lease("w1", now, now + timedelta(minutes=2))
    [record] = await store.claim_due(first, limit=1)
    await store.start_sending(first, {record.id: "<m1@x>"})
    retry = SendResult.of(record, Outcome.RETRY, "421 try later", retry_at=now)
    # w1's retry is stored (its answer lost, say); w2 takes the record again and sends.
    await store.record_results([retry], now=now, worker_id="w1")
    second = Lease("w2", now, now + timedelta(minutes=2))
    assert [r.id for r in await store.claim_due(second, limit=1)] == [record.id]
    assert await store.start_sending(second, {record.id: "<m2@x>"}) == {record.id}
    # w1 stores the same retry again: w2's send in flight stays w2's.
    await store.record_results([retry], now=now + timedelta(seconds=5), worker_id="w1")
    held = await store.get_tracking_unscoped(record.id)
    assert held is not None and (held.status, held.lease_owner) == ("sending", "w2")
    sent_by_w2 = SendResult.of(held, Outcome.SENT)
    await store.record_results([sent_by_w2], now=now + timedelta(seconds=6), worker_id="w2")
    done = await store.get_tracking_unscoped(record.id)
    assert done is not None and done.status == "sent" and done.message_id == "<m2@x>"


# -- a failed import never deletes what a worker took (item 3) --------------------------------


async def test_a_failed_import_keeps_the_people_a_worker_already_sent_to(double: Double) -> None:
    services, store = double.services, double.store
    now = services.clock()
    user = await make_user(services)
    campaign = await make_campaign(
        services, user, await make_mailbox(services, user, daily_limit=500), start_time=now
    )
    await store.run_lifecycle(now=now)
    later = now + timedelta(hours=23)  # everything planned is due by then
    taken: list[str] = []

    async def another_worker() -> None:
        lease = Lease("w2", later, later + timedelta(minutes=2))
        claimed = await store.claim_due(lease, limit=5)
        marked = await store.start_sending(lease, {r.id: f"<{r.id}@x>" for r in claimed[:3]})
        results = [SendResult.of(r, Outcome.SENT) for r in claimed if r.id in marked]
        await store.record_results(results, now=later)
        taken.extend(r.recipient_email for r in claimed)

    def scheduling(args: tuple[Any, ...], _: dict[str, Any]) -> bool:
        return len(args) > 1 and "scheduled_at" in args[1].get("$set", {})

    # The plan's writes make records due 64 at a time: another worker takes some of the
    # first ones, then a later write fails (a failover).
    double.faults.add(Fault(method="update_one", when=scheduling, nth=70, run=another_worker))
    double.faults.add(
        Fault(
            method="update_one",
            when=scheduling,
            nth=90,
            error=NotPrimaryError("not primary", {"code": 10107}),
        )
    )
    people = "email\n" + "".join(f"p{n:03}@example.com\n" for n in range(120))
    with pytest.raises(DatabaseUnavailableError):
        await services.sending.import_recipients(
            user.user_id, campaign.campaign_id, io.BytesIO(people.encode())
        )
    assert len(taken) == 5
    kept = {
        document["recipient_email"]: document["status"]
        async for document in double.raw(TRACKING).find({"campaign_id": campaign.campaign_id})
    }
    # The three sent and the two another worker holds stay, whole; everyone else went.
    assert sorted(kept) == sorted(taken)
    assert sorted(kept.values()) == ["pending", "pending", "sent", "sent", "sent"]
    recipients = await double.raw(RECIPIENTS).distinct(
        "recipient_email", {"campaign_id": campaign.campaign_id}
    )
    assert sorted(recipients) == sorted(taken)


# -- queries shaped for their indexes (item 7) ------------------------------------------------


def bounded_prefix(query: dict[str, Any], keys: tuple[str, ...]) -> int:
    """How many leading keys of an index `query` bounds as the server would use them:
    equalities and `$in` lists, then at most one range, which ends the prefix."""
    clauses: dict[str, Any] = {}
    for part in [query, *query.get("$and", [])]:
        clauses.update({k: v for k, v in part.items() if not k.startswith("$")})
    bounded = 0
    for key in keys:
        condition = clauses.get(key)
        if condition is None:
            break
        bounded += 1
        if isinstance(condition, dict) and set(condition) & {"$lt", "$lte", "$gt", "$gte"}:
            break
    return bounded


async def test_user_lookups_state_their_partial_indexes_filter(double: Double) -> None:
    user = await make_user(double.services, clerk_user_id="user_2abc")
    seen: list[dict[str, Any]] = []
    double.faults.add(
        Fault(method="find_one", collection=USERS, when=lambda a, _: seen.append(a[0]) or False)
    )
    assert (await double.store.get_user_by_clerk_id("user_2abc")) == user
    assert (await double.store.get_user_by_email(user.email or "")) == user
    partial = {spec.keys[0]: spec for spec in INDEXES if spec.collection == USERS and spec.partial}
    for query, field in zip(seen, ("clerk_user_id", "email"), strict=True):
        spec = partial[field]
        assert spec.partial is not None
        # The server uses a partial index only for a query that states its filter.
        assert {field: spec.partial[field]} in query["$and"], query


async def test_claims_lease_due_records_in_one_step_each_on_the_claim_index(
    double: Double,
) -> None:
    services, store = double.services, double.store
    now = services.clock()
    user = await make_user(services)
    mailbox = await make_mailbox(services, user)
    active = await make_campaign(services, user, mailbox, start_time=now)
    paused = await make_campaign(services, user, mailbox, start_time=now)
    await store.run_lifecycle(now=now)
    await services.campaigns.pause(user.user_id, paused.campaign_id)
    await store.insert_tracking(
        [make_email(paused, f"q{n}@example.com", scheduled_at=now) for n in range(40)]
        + [make_email(active, f"a{n}@example.com", scheduled_at=now) for n in range(30)]
    )
    claims: list[dict[str, Any]] = []

    sorts: list[Any] = []

    def claim(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if "lease_owner" in args[1].get("$set", {}) and "sort" in kwargs:
            claims.append(args[0])
            sorts.append(kwargs["sort"])
        return False

    double.faults.add(Fault(method="find_one_and_update", collection=TRACKING, when=claim))
    double.faults.calls.clear()
    leases = [Lease(f"w{n}", now, now + timedelta(minutes=2)) for n in range(4)]
    got = await asyncio.gather(*(store.claim_due(lease, limit=10) for lease in leases))
    ids = [record.id for batch in got for record in batch]
    assert len(ids) == len(set(ids)) == 30
    assert {record.campaign_id for batch in got for record in batch} == {active.campaign_id}
    # One find_one_and_update per record leased, plus at most one that finds nothing per
    # claimer (the double runs them one after another, a server side by side); no
    # candidate list read for others to race on.
    assert 30 + 1 <= len(claims) <= 30 + 4
    assert (TRACKING, "find") not in double.faults.calls
    index = next(
        s for s in INDEXES if s.name == "ix_email_tracking_status_campaign_id_scheduled_at"
    )
    assert all(bounded_prefix(query, index.keys) == 3 for query in claims)
    # Sorted by the key after the equality and $in ones: the index's own order, merged
    # across campaigns; any other sort key would be a sort in memory per claim.
    assert all(sort == [(index.keys[2], 1)] for sort in sorts)
    assert claims[0]["campaign_id"] == {"$in": [active.campaign_id]}


# -- exports page by a key that never changes (item 7), on every backend ----------------------


async def test_an_export_neither_skips_nor_repeats_records_changing_under_it(
    services: Services,
) -> None:
    store, now = services.store, services.clock()
    user = await make_user(services)
    mailbox = await make_mailbox(services, user)
    campaign = await make_campaign(services, user, mailbox)
    records = [
        make_email(campaign, f"p{n:02}@example.com", scheduled_at=now + timedelta(minutes=n))
        for n in range(25)
    ]
    # Every third person has a second step: pages end between one person's two emails.
    records += [
        make_email(campaign, f"p{n:02}@example.com", step=2, status="waiting")
        for n in range(0, 25, 3)
    ]
    await store.insert_tracking(records)
    read: list[str] = []
    after = None
    while True:
        page = await store.export_tracking(
            user.user_id, campaign.campaign_id, after=after, limit=10
        )
        if not page:
            break
        read += [(record.recipient_email, record.step) for record in page]
        after = (page[-1].recipient_email, page[-1].step)
        # Meanwhile every record not read yet moves ahead of those read (a retry rewrites
        # scheduled_at): offsets over that order would skip or repeat.
        await store.replan_pending(
            campaign,
            plan=lambda zones: [
                Slot(mailbox.mailbox_id, now - timedelta(minutes=n)) for n in range(len(zones))
            ],
        )
    assert read == sorted((record.recipient_email, record.step) for record in records)
    assert len(read) == 34
    assert (
        await store.export_tracking(new_object_id(), campaign.campaign_id, after=None, limit=10)
        == []
    )


# -- the reconciliation repairs what a crash leaves short (item 4) ----------------------------


class Died(Exception):
    """The process died here: nothing it would write afterwards arrives."""


async def test_the_reconciliation_recounts_what_a_crash_before_an_increment_left_short(
    double: Double, caplog: pytest.LogCaptureFixture
) -> None:
    records = await sent(double, 3)
    campaign_id, store, now = records[0].campaign_id, double.store, double.services.clock()
    # The open is logged and its record's field set; the process dies before its `$inc`.
    double.faults.add(
        Fault(
            method="find_one_and_update",
            collection=METRICS,
            when=increments("total_opened"),
            error=Died("killed"),
            kills=True,
        )
    )
    with pytest.raises(Died):
        await store.record_event(_open(records[0], now), EventChange(firsts=OPEN.firsts))
    double.faults.revive()
    short = await store.get_metrics_unscoped(campaign_id)
    assert short is not None and short.total_opened == 0
    reconciled = await Reconciler(store, clock=double.services.clock).run_once()
    assert reconciled.repaired == (campaign_id,) and reconciled.outcomes_completed == 0
    repaired = await store.get_metrics_unscoped(campaign_id)
    assert repaired is not None and (repaired.total_opened, repaired.open_rate) == (1, 33.33)
    assert f"campaign {campaign_id} recounted from its event log: total_opened 0 → 1" in (
        caplog.text
    )
    # Another process in the same interval: not its turn.
    assert await Reconciler(store, clock=double.services.clock).run_once() == Reconciled()
    # The next interval: the campaign is still active, recounted, nothing to repair; its
    # last_updated stays as the repair left it (a recount that changes nothing moves
    # nothing), so once it is no longer active it drops out of the passes.
    double.services.clock.now += RECONCILE_INTERVAL
    again = await Reconciler(store, clock=double.services.clock).run_once()
    assert again == Reconciled(0, 1, ())
    unchanged = await store.get_metrics_unscoped(campaign_id)
    assert unchanged is not None and unchanged.last_updated == repaired.last_updated
    await double.services.campaigns.pause(records[0].user_id, campaign_id)
    double.services.clock.now += 2 * RECONCILE_INTERVAL + timedelta(minutes=1)
    assert await Reconciler(store, clock=double.services.clock).run_once() == Reconciled()


async def test_the_reconciliation_has_nothing_to_do_where_changes_are_transactions(
    services: Services,
) -> None:
    user = await make_user(services)
    await make_campaign(services, user, await make_mailbox(services, user))
    reconciled = await Reconciler(services.store, clock=services.clock).run_once()
    assert reconciled.outcomes_completed == 0 and reconciled.repaired == ()
    # MongoDB recounts the campaign counted lately (its document was just written); SQL
    # names nothing to recount.
    assert reconciled.recounted == (1 if services.store.backend == "mongodb" else 0)
