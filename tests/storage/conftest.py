"""The conformance suite runs on every backend: SQLite, PostgreSQL and — with the MongoDB
adapter — MongoDB, through the in-process double of PyMongo's async API
(tests/support/mongo_double.py) or, when MAILRAMP_TEST_MONGODB_URL is set, a real server.

Tests that inspect SQL itself (table layout, raw rows through `store.engine`) are listed in
SQL_ONLY: their mongodb parameter is deselected, and test_mongo_documents.py checks the same
things on the raw documents."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mailramp.storage.sql import SqlStore
from tests.conftest import BACKENDS, PostgresTarget, new_postgres_database
from tests.support.loops import run_blocking

MONGODB_URL = os.environ.get("MAILRAMP_TEST_MONGODB_URL")
# MongoDB is part of the suite: on the double by default, on a server when its URL is set.
# (MAILRAMP_TEST_MONGODB=0 leaves it out for a quicker SQL-only run.)
MONGODB = bool(MONGODB_URL) or os.environ.get("MAILRAMP_TEST_MONGODB") != "0"
CONTRACT_BACKENDS = [*BACKENDS, "mongodb"] if MONGODB else BACKENDS

# Tests that read SQL tables themselves, with their MongoDB counterpart.
SQL_ONLY = {
    # table columns and Alembic metadata → test_usage_examples_write_the_schema_documents
    "test_schema.py::test_every_schema_field_is_a_column_with_its_exact_name",
    "test_schema.py::test_migrations_build_exactly_the_declared_tables",
    # SQL indexes → test_every_index_is_created_with_its_options
    "test_schema.py::test_unique_and_lookup_indexes_exist",
    # raw rows → test_raw_documents_hold_no_plaintext_secret_and_rotation_works
    "test_secrets.py::test_raw_database_holds_no_plaintext_secret",
    "test_secrets.py::test_rotate_drop_old_key_and_everything_still_decrypts",
    # → test_ciphertext_copied_to_another_document_does_not_decrypt
    "test_secrets.py::test_ciphertext_copied_to_another_row_does_not_decrypt",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the mongodb parameter of the SQL_ONLY tests (deselected, not skipped, so
    strict runs stay clean)."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_mongodb = callspec is not None and callspec.params.get("database_url") == "mongodb"
        name = f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
        (drop if on_mongodb and name in SQL_ONLY else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=CONTRACT_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh database on each backend (for mongodb, a unique database name)."""
    if request.param == "sqlite":
        path = tmp_path / "mailramp.db"
        path.write_bytes(sqlite_template.read_bytes())
        return f"sqlite:///{path}"
    if request.param == "mongodb":
        name = f"mailramp_test_{uuid.uuid4().hex[:12]}"
        base = (MONGODB_URL or "mongodb://double").rstrip("/")
        return f"{base}/{name}"
    target: PostgresTarget = request.getfixturevalue("postgres")
    return run_blocking(new_postgres_database(target))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Any]:
    """A Store on a fresh, migrated database."""
    if database_url.startswith("mongodb"):
        from mailramp.storage.mongo import MongoStore
        from mailramp.storage.mongo.client import database_name

        if MONGODB_URL:
            mongo = MongoStore.from_url(database_url)
        else:
            from tests.support.mongo_double import mock_database

            mongo = MongoStore(mock_database(database_name(database_url)))
        await mongo.migrate()
        try:
            yield mongo
        finally:
            if MONGODB_URL:
                await mongo.database.client.drop_database(mongo.database.name)
            await mongo.close()
        return
    sql = SqlStore.from_url(database_url)
    try:
        yield sql
    finally:
        await sql.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """The URL of a database nothing was ever written to (for upgrade tests)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/old.db"
    target: PostgresTarget = request.getfixturevalue("postgres")
    return run_blocking(new_postgres_database(target, migrated=False))
