"""The MongoDB adapter writes the schema's documents: after the four usage examples of
docs/schema.md, the raw documents are read back and every field name and BSON type is
checked against the schema's field lists; the indexes and migrate's idempotence too.

Runs in every CI run on the in-process double (tests/support/mongo_double.py); with
MAILRAMP_TEST_MONGODB_URL it runs against that server instead."""

from __future__ import annotations

import asyncio
import re
import types
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import pytest
from bson import ObjectId
from pydantic import BaseModel

from mailramp.accounts.models import User
from mailramp.accounts.service import AccountService
from mailramp.campaigns.models import Campaign
from mailramp.campaigns.service import CampaignService
from mailramp.errors import SecretIntegrityError
from mailramp.kit.ids import is_uuid4
from mailramp.kit.secrets import SecretBox, generate_key
from mailramp.mailboxes.models import Mailbox
from mailramp.metrics.models import CampaignMetrics
from mailramp.metrics.service import MetricsService
from mailramp.runtime import mailbox_service
from mailramp.storage.mongo import MongoStore
from mailramp.storage.mongo.base import SCHEMA_VERSION
from mailramp.storage.mongo.codec import (
    CAMPAIGNS,
    MAILBOXES,
    META,
    METRICS,
    TRACKING,
    USERS,
    to_document,
)
from mailramp.storage.mongo.indexes import INDEXES
from mailramp.tracking.models import EmailTracking, EventType, TrackingStatus
from mailramp.tracking.repository import EventLogQuery
from tests.storage.conftest import MONGODB_URL

SCHEMA = Path(__file__).parents[2] / "docs" / "schema.md"
T = TypeVar("T")

# The schema's types (docs/schema.md "(Type, …)") as the Python types PyMongo returns.
BSON_TYPES: dict[str, tuple[type, ...]] = {
    "ObjectId": (ObjectId,),
    "String": (str,),
    "DateTime": (datetime,),
    "Boolean": (bool,),
    "Number": (int, float),
    "Object": (dict,),
}
COLLECTION_MODELS: dict[str, type[BaseModel]] = {
    USERS: User,
    MAILBOXES: Mailbox,
    CAMPAIGNS: Campaign,
    METRICS: CampaignMetrics,
}


def schema_fields() -> dict[str, dict[str, tuple[str, bool]]]:
    """{collection: {field: (schema type, optional)}} from docs/schema.md's field lists."""
    text = SCHEMA.read_text()
    fields: dict[str, dict[str, tuple[str, bool]]] = {}
    for section in re.split(r"\n### \d+\. ", text)[1:]:
        name = re.match(r"`(\w+)`", section)
        assert name is not None
        listed = re.findall(r"^- `(\w+)` \(([^)]*)\)", section, flags=re.MULTILINE)
        fields[name.group(1)] = {
            field: (spec.split(",")[0].strip(), "Optional" in spec) for field, spec in listed
        }
    return fields


def usage_examples() -> list[str]:
    text = SCHEMA.read_text()
    section = text[text.index("## Usage Examples") :]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def may_be_null(model: type[BaseModel], name: str) -> bool:
    """Whether the model lets the stored field be null (None)."""
    for field_name, field in model.model_fields.items():
        if (field.alias or field_name) == name:
            annotation = field.annotation
            origin = get_origin(annotation)
            return (origin is Union or origin is types.UnionType) and type(None) in get_args(
                annotation
            )
    raise AssertionError(f"{model.__name__} has no field {name}")


@pytest.fixture
async def store() -> AsyncIterator[MongoStore]:
    """A migrated MongoStore: on the double, or on MAILRAMP_TEST_MONGODB_URL's server."""
    name = f"mailramp_test_{uuid.uuid4().hex[:12]}"
    if MONGODB_URL:
        mongo = MongoStore.from_url(f"{MONGODB_URL.rstrip('/')}/{name}")
    else:
        from tests.support.mongo_double import mock_database

        mongo = MongoStore(mock_database(name))
    await mongo.migrate()
    try:
        yield mongo
    finally:
        if MONGODB_URL:
            await mongo.database.client.drop_database(mongo.database.name)
        await mongo.close()


@dataclass
class DbManagerShim:
    """The usage examples' `db_manager` calls, run on the services over `store` (the
    blocks are synchronous: they run in a worker thread, the services on the test loop)."""

    store: MongoStore
    loop: asyncio.AbstractEventLoop

    def _run(self, work: Callable[[], Awaitable[T]]) -> T:
        async def call() -> T:
            return await work()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout=60)

    def create_user(self, **fields: Any) -> User:
        return self._run(lambda: AccountService(self.store).create_user(**fields))

    def create_mailbox(self, user_id: str, **fields: Any) -> Mailbox:
        box = SecretBox([generate_key()])
        return self._run(lambda: mailbox_service(self.store, box).create_mailbox(user_id, **fields))

    def create_campaign(self, user_id: str, **fields: Any) -> Campaign:
        return self._run(lambda: CampaignService(self.store).create_campaign(user_id, **fields))

    def get_campaign_metrics(self, campaign_id: str) -> CampaignMetrics:
        return self._run(lambda: MetricsService(self.store).get_campaign_metrics(campaign_id))


async def run_usage_examples(store: MongoStore) -> dict[str, Any]:
    """Run the four examples as docs/schema.md writes them (placeholders filled in with
    the ids the earlier examples returned, as tests/test_db_manager.py does)."""
    shim = DbManagerShim(store, asyncio.get_running_loop())
    namespace: dict[str, Any] = {"db_manager": shim, "datetime": datetime, "timezone": timezone}
    placeholders: dict[str, str] = {}
    results: dict[str, Any] = {}

    def run_all() -> None:
        for code in usage_examples():
            for placeholder, value in placeholders.items():
                code = code.replace(f'"{placeholder}"', repr(value))
            exec(code, namespace)  # noqa: S102 - the schema's own examples
            result = namespace.get("result")
            for name in ("user_id", "mailbox_id", "campaign_id"):
                if hasattr(result, name) and f"{name}_string" not in placeholders:
                    placeholders[f"{name}_string"] = getattr(result, name)
                    results[name] = result
        results["metrics"] = namespace["metrics"]

    await asyncio.to_thread(run_all)
    return results


def check_document(collection: str, document: dict[str, Any]) -> None:
    """Every field the schema lists is there with the schema's BSON type (null only where
    the model allows it); every other field is one the model knows; datetimes are UTC with
    at most millisecond precision (what a BSON date holds)."""
    model = COLLECTION_MODELS[collection]
    expected = schema_fields()[collection]
    missing = set(expected) - set(document)
    # A mailbox without a password leaves it null, not absent: every schema field is stored.
    assert not missing, f"{collection}: fields missing {sorted(missing)}"
    for field, (kind, optional) in expected.items():
        value = document[field]
        if value is None:
            assert optional or may_be_null(model, field), f"{collection}.{field} is null"
            continue
        allowed = BSON_TYPES[kind]
        assert isinstance(value, allowed), (
            f"{collection}.{field}: {type(value).__name__}, schema says {kind}"
        )
        if kind == "Number":
            assert not isinstance(value, bool), f"{collection}.{field} is a bool"
    known = {field.alias or name for name, field in model.model_fields.items()}
    extra = set(document) - known
    assert not extra, f"{collection}: fields the model does not know {sorted(extra)}"
    for field, value in document.items():
        if isinstance(value, datetime):
            assert value.tzinfo is not None and value.utcoffset() == timedelta(0), field
            assert value.microsecond % 1000 == 0, f"{collection}.{field} below a millisecond"
        if field.endswith("_id") and field not in ("campaign_id", "clerk_user_id", "login_id"):
            # Ids are ObjectIds, except the aliases of `_id` on their own documents.
            alias = (collection, field) in ((USERS, "user_id"), (MAILBOXES, "mailbox_id"))
            assert isinstance(value, str if alias else ObjectId), f"{collection}.{field}"


async def test_usage_examples_write_the_schema_documents(store: MongoStore) -> None:
    results = await run_usage_examples(store)
    user, mailbox, campaign = results["user_id"], results["mailbox_id"], results["campaign_id"]
    metrics = results["metrics"]
    db = store.database

    user_doc = await db[USERS].find_one({"_id": ObjectId(user.id)})
    box_doc = await db[MAILBOXES].find_one({"_id": ObjectId(mailbox.id)})
    campaign_doc = await db[CAMPAIGNS].find_one({"campaign_id": campaign.campaign_id})
    metrics_doc = await db[METRICS].find_one({"campaign_id": campaign.campaign_id})
    documents = {USERS: user_doc, MAILBOXES: box_doc, CAMPAIGNS: campaign_doc, METRICS: metrics_doc}
    for collection, document in documents.items():
        assert document is not None, collection
        check_document(collection, document)
    assert user_doc is not None and box_doc is not None
    assert campaign_doc is not None and metrics_doc is not None

    # user_information_table: `user_id` the string alias of `_id`; the example's values.
    assert isinstance(user_doc["_id"], ObjectId) and user_doc["user_id"] == str(user_doc["_id"])
    assert user_doc["login_id"] == "john@example.com" and user_doc["email"] == "john@example.com"
    assert user_doc["clerk_user_id"] == "user_abc123" and user_doc["password"] is None
    assert user_doc["is_active"] is True and user_doc["last_login"] is None

    # linkbox_box_table: `mailbox_id` the alias, `user_id` the owner's ObjectId, the token
    # stored encrypted, the first mailbox primary.
    assert box_doc["mailbox_id"] == str(box_doc["_id"])
    assert box_doc["user_id"] == user_doc["_id"]
    assert box_doc["access_token"].startswith("enc1:") and "token_here" not in str(box_doc)
    assert box_doc["provider"] == "outlook" and box_doc["status"] == "active"
    assert box_doc["is_primary"] is True and box_doc["user_profile"] == {}

    # campaign_creation_table: ObjectId foreign keys, a UUID campaign_id, end = start + 24h.
    assert isinstance(campaign_doc["_id"], ObjectId)
    assert is_uuid4(campaign_doc["campaign_id"])
    assert campaign_doc["user_id"] == user_doc["_id"] == campaign_doc["created_by"]
    assert campaign_doc["mailbox_id"] == box_doc["_id"]
    assert campaign_doc["end_time"] - campaign_doc["start_time"] == timedelta(hours=24)
    assert campaign_doc["duration"] == 24 and campaign_doc["total_recipients"] == 100
    assert campaign_doc["status"] in ("scheduled", "active")

    # campaign_matrix: created with the campaign, same ids, counters 0 (int), rates 0.0.
    assert metrics_doc["campaign_id"] == campaign_doc["campaign_id"]
    assert metrics_doc["user_id"] == user_doc["_id"]
    assert metrics_doc["mailbox_id"] == box_doc["_id"]
    for name in ("total_sent", "total_delivered", "total_opened", "total_clicks"):
        assert metrics_doc[name] == 0 and type(metrics_doc[name]) is int
    for name in ("open_rate", "click_rate", "bounce_rate", "reply_rate"):
        assert metrics_doc[name] == 0.0 and type(metrics_doc[name]) is float
    assert metrics.campaign_id == campaign.campaign_id and metrics.total_sent == 0

    # And the models read back are exactly what the examples returned.
    assert await store.get_user(user.id) == user
    assert await store.get_mailbox(user.id, mailbox.id) == mailbox
    assert await store.get_campaign(user.id, campaign.campaign_id) == campaign
    assert await store.get_metrics(user.id, campaign.campaign_id) == metrics


async def test_counters_stay_numbers_and_rates_floats_after_increments(
    store: MongoStore,
) -> None:
    results = await run_usage_examples(store)
    campaign_id = results["campaign_id"].campaign_id
    await store.increment_metrics(
        campaign_id, {"total_sent": 3, "total_opened": 1}, at=results["campaign_id"].created_at
    )
    document = await store.database[METRICS].find_one({"campaign_id": campaign_id})
    assert document is not None
    check_document(METRICS, document)
    assert type(document["total_sent"]) is int and document["total_delivered"] == 3
    assert type(document["open_rate"]) is float and document["open_rate"] == 33.33


async def test_every_index_is_created_with_its_options(store: MongoStore) -> None:
    for spec in INDEXES:
        info = await store.database[spec.collection].index_information()
        assert spec.name in info, f"{spec.collection}: index {spec.name} missing"
        index = info[spec.name]
        assert [key for key, _ in index["key"]] == list(spec.keys), spec.name
        assert bool(index.get("unique")) is spec.unique, spec.name
        assert index.get("partialFilterExpression") == spec.partial, spec.name
    # The optional unique fields are partial (many users without email or Clerk id), and
    # one primary mailbox per user is a partial unique index.
    partial = {spec.name for spec in INDEXES if spec.partial is not None and spec.unique}
    assert partial >= {
        "uq_user_information_table_email",
        "uq_user_information_table_clerk_user_id",
        "uq_linkbox_box_table_primary",
    }


async def _snapshot(store: MongoStore) -> dict[str, Any]:
    indexes = {}
    for collection in sorted({spec.collection for spec in INDEXES}):
        info = await store.database[collection].index_information()
        indexes[collection] = {name: dict(value) for name, value in sorted(info.items())}
    meta = [document async for document in store.database[META].find({})]
    return {"indexes": indexes, "meta": meta}


async def test_migrating_twice_changes_nothing(store: MongoStore) -> None:
    await run_usage_examples(store)
    before = await _snapshot(store)
    counts = {c: await store.database[c].count_documents({}) for c in COLLECTION_MODELS}
    assert await store.migrate() == SCHEMA_VERSION
    assert await store.migrate() == SCHEMA_VERSION
    assert await _snapshot(store) == before
    assert {c: await store.database[c].count_documents({}) for c in COLLECTION_MODELS} == counts
    assert await store.schema_version() == SCHEMA_VERSION


async def test_sub_millisecond_times_round_trip_unchanged(store: MongoStore) -> None:
    """BSON dates hold milliseconds; the models truncate every datetime to milliseconds
    (kit/clock.py), so what is stored and what comes back are the same model — as on SQL."""
    moment = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    user_id = str(ObjectId())
    user = User(
        id=user_id,
        user_id=user_id,
        user_name="Milli",
        login_id="milli@example.com",
        created_at=moment,
        updated_at=moment,
    )
    assert user.created_at.microsecond == 123000
    assert await store.insert_user(user) == user
    assert await store.get_user(user_id) == user
    document = await store.database[USERS].find_one({"_id": ObjectId(user_id)})
    assert document is not None and document["created_at"] == moment.replace(microsecond=123000)


# -- mailbox secrets at rest, on the raw documents (test_secrets.py reads SQL tables) -------

PLAINTEXTS = ("smtp-password-PLAIN-1", "oauth-access-PLAIN-2", "oauth-refresh-PLAIN-3")


async def raw_documents_text(store: MongoStore) -> str:
    """Every value of every document of every collection, as stored, in one string."""
    chunks: list[str] = []
    for collection in await store.database.list_collection_names():
        chunks.extend([str(doc) async for doc in store.database[collection].find({})])
    return "\n".join(chunks)


async def link_with_secrets(store: MongoStore, box: SecretBox) -> tuple[str, str, str]:
    user = await AccountService(store).create_user(user_name="Sec", login_id="sec@example.com")
    mailboxes = mailbox_service(store, box)
    smtp = await mailboxes.create_mailbox(
        user.id,
        email="smtp@example.com",
        provider="smtp",
        smtp_host="smtp.example.com",
        password=PLAINTEXTS[0],
    )
    oauth = await mailboxes.create_mailbox(
        user.id,
        email="oauth@example.com",
        provider="gmail",
        access_token=PLAINTEXTS[1],
        refresh_token=PLAINTEXTS[2],
    )
    return user.id, smtp.id, oauth.id


async def test_raw_documents_hold_no_plaintext_secret_and_rotation_works(
    store: MongoStore,
) -> None:
    key, new_key = generate_key(), generate_key()
    user_id, smtp_id, oauth_id = await link_with_secrets(store, SecretBox([key]))
    raw = await raw_documents_text(store)
    assert raw.count("enc1:") == 3
    for plaintext in PLAINTEXTS:
        assert plaintext not in raw and plaintext.encode().hex() not in raw

    report = await mailbox_service(store, SecretBox([new_key, key])).rotate_secrets()
    assert report.rotated == 3 and report.skipped_changed == 0
    only_new = mailbox_service(store, SecretBox([new_key]))
    assert await only_new.check_secrets(sample=None) == 3
    smtp = await only_new.credentials(user_id, smtp_id)
    oauth = await only_new.credentials(user_id, oauth_id)
    assert smtp.password is not None and smtp.password.get_secret_value() == PLAINTEXTS[0]
    assert oauth.refresh_token is not None
    assert oauth.refresh_token.get_secret_value() == PLAINTEXTS[2]
    assert await raw_documents_text(store) != raw


async def test_ciphertext_copied_to_another_document_does_not_decrypt(store: MongoStore) -> None:
    box = SecretBox([generate_key()])
    user_id, smtp_id, oauth_id = await link_with_secrets(store, box)
    boxes = store.database[MAILBOXES]
    stolen = (await boxes.find_one({"_id": ObjectId(smtp_id)}))["password"]
    await boxes.update_one({"_id": ObjectId(oauth_id)}, {"$set": {"password": stolen}})
    with pytest.raises(SecretIntegrityError):
        await mailbox_service(store, box).credentials(user_id, oauth_id)
    await boxes.update_one({"_id": ObjectId(smtp_id)}, {"$set": {"access_token": stolen}})
    with pytest.raises(SecretIntegrityError):
        await mailbox_service(store, box).credentials(user_id, smtp_id)


# -- wiring: a mongodb:// URL runs mailramp on MongoDB ------------------------------------


def test_mongodb_urls_select_the_mongodb_backend() -> None:
    from mailramp.config import Settings, backend_of
    from mailramp.runtime import open_store, schema_head

    assert backend_of("mongodb://localhost:27017/mailramp") == "mongodb"
    assert backend_of("mongodb+srv://cluster.example.net/mailramp") == "mongodb"
    settings = Settings(database_url="mongodb://127.0.0.1:1/mailramp_wiring")
    assert settings.backend == "mongodb"
    store = open_store(settings)  # the client connects lazily: nothing is contacted here
    try:
        assert isinstance(store, MongoStore) and store.backend == "mongodb"
        assert store.database.name == "mailramp_wiring"
    finally:
        asyncio.run(store.close())
    assert schema_head("mongodb") == SCHEMA_VERSION


@pytest.fixture
def double_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A mongodb:// URL whose store is the in-process double (one database per test)."""
    from tests.support.mongo_double import mock_database

    database = mock_database("mailramp_wiring")
    monkeypatch.setattr(
        MongoStore, "from_url", classmethod(lambda cls, url, **_options: cls(database))
    )
    monkeypatch.setenv("MAILRAMP_ENCRYPTION_KEY_FILE", str(tmp_path / "keys"))
    url = "mongodb://double/mailramp_wiring"
    monkeypatch.setenv("MAILRAMP_DATABASE_URL", url)
    return url


async def test_the_runtime_migrates_and_checks_the_schema_on_mongodb(double_url: str) -> None:
    from mailramp.config import Settings
    from mailramp.errors import ConfigurationError
    from mailramp.runtime import open_runtime

    settings = Settings(database_url=double_url)
    with pytest.raises(ConfigurationError, match="mailramp db upgrade"):
        await open_runtime(settings, migrate=False)
    runtime = await open_runtime(settings, migrate=True)
    try:
        assert runtime.store.backend == "mongodb"
        assert await runtime.store.schema_version() == SCHEMA_VERSION
        user = await runtime.accounts.create_user(user_name="Run", login_id="run@example.com")
        assert await runtime.accounts.get_user(user.id) == user
    finally:
        await runtime.close()
    again = await open_runtime(settings, migrate=False)  # the schema is current now
    await again.close()


def test_db_upgrade_and_current_on_mongodb(double_url: str) -> None:
    from typer.testing import CliRunner

    from mailramp.cli.main import app

    runner = CliRunner()
    before = runner.invoke(app, ["db", "current"])
    assert before.exit_code == 0, before.output
    assert "current: (empty database)" in before.output
    assert f"head:    {SCHEMA_VERSION}" in before.output
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"database at revision {SCHEMA_VERSION} (mongodb)" in upgraded.output
    after = runner.invoke(app, ["db", "current"])
    assert f"current: {SCHEMA_VERSION}" in after.output


async def test_campaign_insert_failure_removes_the_metrics_written_first(
    store: MongoStore,
) -> None:
    """insert_campaign writes campaign_matrix first, then the campaign; a refused campaign
    takes its metrics document back out (test_campaigns.py covers the metrics refusal)."""
    from mailramp.errors import DuplicateError
    from mailramp.kit.ids import new_campaign_id, new_object_id

    results = await run_usage_examples(store)
    existing: Campaign = results["campaign_id"]
    fresh = existing.model_copy(update={"campaign_id": new_campaign_id()})  # same `_id`
    metrics = CampaignMetrics(
        id=new_object_id(),
        campaign_id=fresh.campaign_id,
        user_id=fresh.user_id,
        mailbox_id=fresh.mailbox_id,
        created_at=fresh.created_at,
        last_updated=fresh.created_at,
    )
    with pytest.raises(DuplicateError):
        await store.insert_campaign(fresh, metrics)
    assert await store.get_metrics_unscoped(fresh.campaign_id) is None
    assert await store.database[METRICS].count_documents({}) == 1
    # A taken campaign_id is reported as the campaign's, as on SQL.
    again = existing.model_copy(update={"id": new_object_id()})
    with pytest.raises(DuplicateError) as caught:
        await store.insert_campaign(
            again, metrics.model_copy(update={"campaign_id": again.campaign_id})
        )
    assert caught.value.field == "campaign_id" and "a campaign with" in str(caught.value)
    assert await store.database[CAMPAIGNS].count_documents({}) == 1


async def test_recomputing_gives_a_moment_the_log_missed_its_event_first(
    store: MongoStore,
) -> None:
    # Without transactions, a crash between an outcome's record write and its event leaves
    # a sent email the log does not know; the counters are rebuilt from the log, so the
    # recount first gives that moment its event (history: marked `backfilled`).
    results = await run_usage_examples(store)
    campaign = results["campaign_id"]
    at = campaign.created_at
    record = EmailTracking(
        id=str(ObjectId()),
        campaign_id=campaign.campaign_id,
        user_id=campaign.user_id,
        mailbox_id=campaign.mailbox_id,
        recipient_email="crashed@example.com",
        status=TrackingStatus.SENT,
        sent_at=at,
        created_at=at,
        updated_at=at,
    )
    await store.database[TRACKING].insert_one(to_document(TRACKING, record))
    for _ in range(2):  # the second recount writes nothing more
        metrics = await store.recompute_metrics(campaign.campaign_id, now=at)
        assert metrics is not None and (metrics.total_sent, metrics.total_delivered) == (1, 1)
    log = await store.list_event_log(campaign.user_id, EventLogQuery())
    assert [(e.type, e.record_id, e.occurred_at, e.details) for e in log] == [
        (EventType.SENT, record.id, at, {"backfilled": "sent_at"})
    ]
