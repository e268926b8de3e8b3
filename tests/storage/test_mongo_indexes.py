"""mailramp's indexes brought into a database that already has some (storage/mongo/indexes.py):
the previous application's plain `field_1` indexes are adopted when they do what ours do,
the ones in the way are reported with what goes wrong meanwhile and the way out, nothing is
dropped, and neither start-up nor `mailramp db upgrade` crashes.

On the in-process double (tests/support/mongo_double.py), or on MAILRAMP_TEST_MONGODB_URL's
server. mongomock never refuses an index as a server does (codes 85 and 86); `OlderServer`
below refuses as MongoDB before 5.0 does, to show that path."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from mailramp.accounts.service import AccountService
from mailramp.errors import DuplicateError
from mailramp.storage.mongo import MongoStore
from mailramp.storage.mongo.base import SCHEMA_VERSION
from mailramp.storage.mongo.codec import (
    CAMPAIGNS,
    MAILBOXES,
    METRICS,
    USERS,
    WEBHOOK_DELIVERIES,
)
from mailramp.storage.mongo.indexes import INDEXES, Index, IndexReport, ensure_indexes
from tests.storage.conftest import MONGODB_URL

SCHEMA = Path(__file__).parents[2] / "docs" / "schema.md"
LOGGER = "mailramp.storage.mongo.indexes"

# The previous application's indexes (docs/schema.md, "Indexes Created": the unique ones,
# the foreign-key lookups, status, the times), created as it did: one field each, under
# MongoDB's default name `field_1`.
PREVIOUS_APPLICATION: dict[str, dict[str, bool]] = {  # collection → {field: unique}
    USERS: {"login_id": True, "email": True, "clerk_user_id": True, "created_at": False},
    MAILBOXES: {"user_id": False, "status": False, "created_at": False},
    CAMPAIGNS: {
        "campaign_id": True,
        "user_id": False,
        "mailbox_id": False,
        "status": False,
        "start_time": False,
        "created_at": False,
    },
    METRICS: {"campaign_id": True, "user_id": False, "mailbox_id": False, "created_at": False},
}
# Those that do exactly what one of ours does.
ADOPTED = {
    f"{USERS}.login_id_1": "uq_user_information_table_login_id",
    f"{USERS}.created_at_1": "ix_user_information_table_created_at",
    f"{MAILBOXES}.status_1": "ix_linkbox_box_table_status",
    f"{MAILBOXES}.created_at_1": "ix_linkbox_box_table_created_at",
    f"{CAMPAIGNS}.campaign_id_1": "uq_campaign_creation_table_campaign_id",
    f"{CAMPAIGNS}.mailbox_id_1": "ix_campaign_creation_table_mailbox_id",
    f"{CAMPAIGNS}.start_time_1": "ix_campaign_creation_table_start_time",
    f"{METRICS}.campaign_id_1": "uq_campaign_matrix_campaign_id",
    f"{METRICS}.user_id_1": "ix_campaign_matrix_user_id",
    f"{METRICS}.mailbox_id_1": "ix_campaign_matrix_mailbox_id",
}
# Plain lookups no index of ours has the keys of (ours are compound there), or redundant
# beside ours: harmless, kept and listed.
FOREIGN = {
    f"{MAILBOXES}.user_id_1",
    f"{CAMPAIGNS}.user_id_1",
    f"{CAMPAIGNS}.status_1",
    f"{CAMPAIGNS}.created_at_1",
    f"{METRICS}.created_at_1",
}
EMAIL_CONFLICT = [
    "conflict in user_information_table: email_1 {email: 1} {unique: true} is kept; "
    "mailramp needs uq_user_information_table_email {email: 1} {unique: true, "
    'partialFilterExpression: {email: {$type: "string"}}} (in place beside it)',
    "  meanwhile: a second user without an email is refused",
    '  way out: in mongosh `db.user_information_table.dropIndex("email_1")`, '
    "then `mailramp db upgrade`",
]
CLERK_CONFLICT = [
    "conflict in user_information_table: clerk_user_id_1 {clerk_user_id: 1} {unique: true} "
    "is kept; mailramp needs uq_user_information_table_clerk_user_id {clerk_user_id: 1} "
    '{unique: true, partialFilterExpression: {clerk_user_id: {$type: "string"}}} '
    "(in place beside it)",
    "  meanwhile: a second user without a clerk_user_id is refused",
    '  way out: in mongosh `db.user_information_table.dropIndex("clerk_user_id_1")`, '
    "then `mailramp db upgrade`",
]
# The same conflict, as the log's one warning line.
EMAIL_WARNING = (
    "conflict in user_information_table: email_1 {email: 1} {unique: true} is kept; "
    "mailramp needs uq_user_information_table_email {email: 1} {unique: true, "
    'partialFilterExpression: {email: {$type: "string"}}} (in place beside it); '
    "meanwhile: a second user without an email is refused; way out: in mongosh "
    '`db.user_information_table.dropIndex("email_1")`, then `mailramp db upgrade`'
)
DROP_INDEX = re.compile(r'`db\.(\w+)\.dropIndex\("([^"]+)"\)`')


def test_the_previous_applications_indexes_are_the_schemas() -> None:
    """Every field indexed above is one the schema lists for that collection, and the
    unique ones are those the schema calls unique."""
    text = SCHEMA.read_text()
    unique_line = re.search(r"Unique constraints \(([^)]*)\)", text)
    assert unique_line is not None
    said_unique = {name.strip() for name in unique_line.group(1).split(",")} - {"etc."}
    for section in re.split(r"\n### \d+\. ", text)[1:]:
        name = re.match(r"`(\w+)`", section)
        assert name is not None
        fields = dict(re.findall(r"^- `(\w+)` \(([^)]*)\)", section, flags=re.MULTILINE))
        for field, unique in PREVIOUS_APPLICATION.get(name.group(1), {}).items():
            assert field in fields, (name.group(1), field)
            assert unique is ("Unique" in fields[field] or field in said_unique), field


async def previous_application(database: Any) -> dict[str, dict[str, Any]]:
    """Create the previous application's indexes; what index_information() says of them."""
    for collection, fields in PREVIOUS_APPLICATION.items():
        for field, unique in fields.items():
            await database[collection].create_index([(field, 1)], unique=unique)
    return {
        collection: {
            name: definition
            for name, definition in (await database[collection].index_information()).items()
            if name != "_id_"
        }
        for collection in PREVIOUS_APPLICATION
    }


@pytest.fixture
async def store() -> AsyncIterator[MongoStore]:
    """A MongoStore on an empty database, not migrated: on the double, or on
    MAILRAMP_TEST_MONGODB_URL's server."""
    name = f"mailramp_test_{uuid.uuid4().hex[:12]}"
    if MONGODB_URL:
        mongo = MongoStore.from_url(f"{MONGODB_URL.rstrip('/')}/{name}")
    else:
        from tests.support.mongo_double import mock_database

        mongo = MongoStore(mock_database(name))
    try:
        yield mongo
    finally:
        if MONGODB_URL:
            await mongo.database.client.drop_database(mongo.database.name)
        await mongo.close()


def names(indexes: list[Index]) -> set[str]:
    return {f"{index.collection}.{index.name}" for index in indexes}


async def test_the_previous_applications_indexes_are_adopted_or_reported_never_dropped(
    store: MongoStore, caplog: pytest.LogCaptureFixture
) -> None:
    old = await previous_application(store.database)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert await store.migrate() == SCHEMA_VERSION  # start-up goes on
    report: IndexReport = store.index_report

    # What the operator reads: two conflicts, each with its way out; the rest adopted or kept.
    assert [conflict.lines() for conflict in report.conflicts] == [EMAIL_CONFLICT, CLERK_CONFLICT]
    lines = report.lines()
    created = len(INDEXES) - len(ADOPTED)
    assert (
        lines[0] == f"indexes: {created} created, 10 adopted, 5 kept (not mailramp's), 2 conflicts"
    )
    assert lines[1] == (
        "adopted: user_information_table.login_id_1 serves as "
        "uq_user_information_table_login_id (same keys and options)"
    )
    assert lines[11:17] == EMAIL_CONFLICT + CLERK_CONFLICT
    assert "kept, not mailramp's: campaign_creation_table.status_1 {status: 1}" in lines
    assert {f"{a.index.collection}.{a.index.name}": a.spec.name for a in report.adopted} == ADOPTED
    assert names(report.foreign) == FOREIGN

    # Logged as one warning line each, without a traceback.
    warnings = [record for record in caplog.records if record.name == LOGGER]
    assert [record.levelno for record in warnings] == [logging.WARNING] * 2
    assert [record.getMessage() for record in warnings] == [
        EMAIL_WARNING,
        report.conflicts[1].line(),
    ]
    assert all(record.exc_info is None and "\n" not in record.getMessage() for record in warnings)

    # Nothing was dropped or changed; adopted ones were not created a second time.
    for collection, indexes in old.items():
        held = await store.database[collection].index_information()
        assert {name: held[name] for name in indexes} == indexes
        for adopted in report.adopted:
            assert adopted.spec.name not in held
    for spec in INDEXES:  # every index of ours is there: under its name, or adopted
        held = await store.database[spec.collection].index_information()
        assert spec.name in held or spec.name in ADOPTED.values(), spec.name

    # Meanwhile, as the report says: a second user without an email is refused.
    accounts = AccountService(store)
    await accounts.create_user(user_name="First", login_id="first@example.com")
    with pytest.raises(DuplicateError):
        await accounts.create_user(user_name="Second", login_id="second@example.com")

    # The way out, as printed: drop the index it names, migrate again.
    for conflict in report.conflicts:
        command = DROP_INDEX.search("\n".join(conflict.lines()))
        assert command is not None
        await store.database[command[1]].drop_index(command[2])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await store.migrate()
    assert store.index_report.conflicts == []
    assert store.index_report.lines()[0] == (
        f"indexes: {created} in place, 10 adopted, 5 kept (not mailramp's), no conflict"
    )
    assert [record for record in caplog.records if record.name == LOGGER] == []
    second = await accounts.create_user(user_name="Second", login_id="second@example.com")
    assert second.email is None and await accounts.get_user(second.id) == second


async def test_a_fresh_database_gets_every_index_and_a_second_run_changes_nothing(
    store: MongoStore,
) -> None:
    await store.migrate()
    assert store.index_report.lines() == [f"indexes: {len(INDEXES)} created, no conflict"]
    await store.migrate()
    assert store.index_report.lines() == [f"indexes: {len(INDEXES)} in place, no conflict"]


async def test_our_name_with_other_options_and_another_ttl_are_conflicts_left_in_place(
    store: MongoStore,
) -> None:
    """An index under our name that does something else is never replaced; a TTL that
    deletes documents at another age is reported with what it deletes."""
    database = store.database
    await database[USERS].create_index(
        [("email", 1)], name="uq_user_information_table_email", unique=True
    )
    await database[WEBHOOK_DELIVERIES].create_index([("received_at", 1)], expireAfterSeconds=3600)
    await store.migrate()
    by_name = {
        conflict.existing.name: conflict
        for conflict in store.index_report.conflicts
        if conflict.existing
    }
    assert set(by_name) == {"uq_user_information_table_email", "received_at_1"}
    taken = by_name["uq_user_information_table_email"]
    assert taken.lines() == [
        "conflict in user_information_table: uq_user_information_table_email {email: 1} "
        "{unique: true} is kept; mailramp needs uq_user_information_table_email {email: 1} "
        '{unique: true, partialFilterExpression: {email: {$type: "string"}}} '
        "(not created: the name is taken)",
        "  meanwhile: a second user without an email is refused",
        "  way out: in mongosh "
        '`db.user_information_table.dropIndex("uq_user_information_table_email")`, '
        "then `mailramp db upgrade`",
    ]
    held = await database[USERS].index_information()
    assert "partialFilterExpression" not in held["uq_user_information_table_email"]
    ttl = by_name["received_at_1"]
    assert ttl.meanwhile.startswith(
        "the server deletes webhook_deliveries documents 3600 seconds after their received_at"
    )
    assert ttl.way_out == (
        'db.webhook_deliveries.dropIndex("received_at_1")',
        "mailramp db upgrade",
    )


def test_index_information_is_read_as_a_server_answers_it() -> None:
    """A server may answer directions and TTLs as doubles, and `unique: false` outright."""
    answer = {"v": 2, "key": [("user_id", 1.0)], "unique": False, "ns": "mailramp.api_keys"}
    spec = next(spec for spec in INDEXES if spec.name == "ix_api_keys_user_id")
    assert Index.read("api_keys", "user_id_1", answer).same_as(Index.of(spec))
    ttl = {"key": [("received_at", 1)], "expireAfterSeconds": 604800.0, "v": 2}
    spec = next(spec for spec in INDEXES if spec.collection == WEBHOOK_DELIVERIES)
    assert Index.read(WEBHOOK_DELIVERIES, "r_1", ttl).same_as(Index.of(spec))


# -- a server that refuses (codes 85 and 86) ------------------------------------------------

Refusal = Callable[[list[tuple[str, Any]], dict[str, Any], dict[str, Any]], Exception | None]


class OlderServer:
    """The double, refusing create_index as `refusal(keys, options, held)` says — the
    refusals mongomock never makes."""

    def __init__(self, database: Any, refusal: Refusal) -> None:
        self._database = database
        self._refusal = refusal

    def __getitem__(self, name: str) -> RefusingCollection:
        return RefusingCollection(self._database[name], self._refusal)

    def with_options(self, **options: Any) -> OlderServer:
        return OlderServer(self._database.with_options(**options), self._refusal)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._database, name)


class RefusingCollection:
    def __init__(self, collection: Any, refusal: Refusal) -> None:
        self._collection = collection
        self._refusal = refusal

    async def create_index(self, keys: list[tuple[str, Any]], **options: Any) -> str:
        error = self._refusal(keys, options, await self._collection.index_information())
        if error is not None:
            raise error
        return str(await self._collection.create_index(keys, **options))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)


def before_5_0(
    keys: list[tuple[str, Any]], options: dict[str, Any], held: dict[str, Any]
) -> Exception | None:
    """MongoDB 4.4: one index per key pattern, whatever its uniqueness or partial filter."""
    for name, index in held.items():
        if index["key"] == list(keys) and name != options["name"]:
            return OperationFailure(f"Index already exists with a different name: {name}", code=85)
    return None


@pytest.mark.skipif(bool(MONGODB_URL), reason="simulates a server's refusals on the double")
async def test_a_server_refusing_ours_beside_an_old_index_is_a_conflict_not_a_crash() -> None:
    from tests.support.mongo_double import mock_database

    database = mock_database()
    await previous_application(database)
    # login_id_1 a plain lookup index this time: ours must be created, and cannot be.
    await database[USERS].drop_index("login_id_1")
    await database[USERS].create_index([("login_id", 1)])
    store = MongoStore(OlderServer(database, before_5_0))
    assert await store.migrate() == SCHEMA_VERSION
    report = store.index_report
    by_name = {
        conflict.existing.name: conflict for conflict in report.conflicts if conflict.existing
    }
    assert set(by_name) == {"login_id_1", "email_1", "clerk_user_id_1", "user_id_1"}
    assert by_name["login_id_1"].lines() == [
        "conflict in user_information_table: login_id_1 {login_id: 1} is kept; mailramp needs "
        "uq_user_information_table_login_id {login_id: 1} {unique: true} (not created, the "
        "server said: Index already exists with a different name: login_id_1)",
        "  meanwhile: nothing refuses a second user with the same login_id (mailramp's "
        "uq_user_information_table_login_id is missing)",
        '  way out: in mongosh `db.user_information_table.dropIndex("login_id_1")`, '
        "then `mailramp db upgrade`",
    ]
    # The old unique email_1 still refuses duplicate addresses: only its extra refusal counts.
    assert by_name["email_1"].meanwhile == "a second user without an email is refused"
    assert "uq_linkbox_box_table_primary is missing" in by_name["user_id_1"].meanwhile
    assert by_name["user_id_1"].collection == MAILBOXES

    for conflict in report.conflicts:
        command = DROP_INDEX.search(conflict.line())
        assert command is not None
        await database[command[1]].drop_index(command[2])
    await store.migrate()
    assert store.index_report.conflicts == []
    held = await database[USERS].index_information()
    assert held["uq_user_information_table_login_id"].get("unique") is True


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (85, "Index already exists with a different name: login_id_1"),
        (86, "An existing index has the same name as the requested index but a different key"),
    ],
)
@pytest.mark.skipif(bool(MONGODB_URL), reason="simulates a server's refusals on the double")
async def test_a_refusal_naming_no_index_we_can_see_is_reported_with_the_servers_words(
    code: int, message: str
) -> None:
    """Another process may create an index between our read and our create."""
    from tests.support.mongo_double import mock_database

    def refuse_login_id(keys: Any, options: dict[str, Any], held: Any) -> Exception | None:
        if options["name"] == "uq_user_information_table_login_id":
            return OperationFailure(message, code=code)
        return None

    report = await ensure_indexes(OlderServer(mock_database(), refuse_login_id))
    [conflict] = report.conflicts
    assert conflict.existing is None and conflict.refusal == message
    assert conflict.lines() == [
        "conflict in user_information_table: mailramp needs uq_user_information_table_login_id "
        f"{{login_id: 1}} {{unique: true}} (not created, the server said: {message})",
        "  meanwhile: nothing refuses a second user with the same login_id (mailramp's "
        "uq_user_information_table_login_id is missing)",
        "  way out: in mongosh `db.user_information_table.getIndexes()` shows the index the "
        "server means: drop it, then `mailramp db upgrade`",
    ]
    assert len(report.created) == len(INDEXES) - 1


@pytest.mark.skipif(bool(MONGODB_URL), reason="simulates a server's refusals on the double")
async def test_other_refusals_are_not_conflicts() -> None:
    from tests.support.mongo_double import mock_database

    def unauthorized(keys: Any, options: Any, held: Any) -> Exception:
        return OperationFailure("not authorized on mailramp to execute createIndexes", code=13)

    with pytest.raises(OperationFailure, match="not authorized"):
        await ensure_indexes(OlderServer(mock_database(), unauthorized))


# -- mailramp db upgrade prints the report ------------------------------------------------


@pytest.fixture
def double(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The in-process double behind MAILRAMP_DATABASE_URL (a CLI opens MongoDB from a URL,
    which cannot reach the double: MongoStore.from_url is pointed at it)."""
    from tests.support.mongo_double import mock_database

    database = mock_database("mailramp_indexes")
    monkeypatch.setattr(
        MongoStore, "from_url", classmethod(lambda cls, url, **_options: cls(database))
    )
    monkeypatch.setenv("MAILRAMP_ENCRYPTION_KEY_FILE", str(tmp_path / "keys"))
    monkeypatch.setenv("MAILRAMP_DATABASE_URL", "mongodb://double/mailramp_indexes")
    return database


def test_db_upgrade_prints_the_report_and_the_way_out(double: Any) -> None:
    from typer.testing import CliRunner

    from mailramp.cli.main import app

    asyncio.run(previous_application(double))
    runner = CliRunner()
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    lines = upgraded.stdout.splitlines()
    created = len(INDEXES) - len(ADOPTED)
    assert lines[:2] == [
        f"database at revision {SCHEMA_VERSION} (mongodb)",
        f"indexes: {created} created, 10 adopted, 5 kept (not mailramp's), 2 conflicts",
    ]
    assert lines[12:18] == EMAIL_CONFLICT + CLERK_CONFLICT
    # stderr has the log's warnings, one line per conflict (as start-up logs them)
    warnings = [line for line in upgraded.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 2 and "Traceback" not in upgraded.output
    assert warnings[0].endswith(f"WARNING mailramp.storage.mongo.indexes: {EMAIL_WARNING}")

    asyncio.run(double[USERS].drop_index("email_1"))
    asyncio.run(double[USERS].drop_index("clerk_user_id_1"))
    again = runner.invoke(app, ["db", "upgrade"])
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[1] == (
        f"indexes: {created} in place, 10 adopted, 5 kept (not mailramp's), no conflict"
    )
