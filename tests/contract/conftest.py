"""The conformance suite runs on every backend: SQLite, PostgreSQL and — with the MongoDB
adapter — MongoDB, through the in-process double of PyMongo's async API
(tests/support/mongo_double.py) or, when MAILRAMP_TEST_MONGODB_URL is set, a real server.

Tests that inspect SQL itself (migrations, table layout) ask for `sql_store` or skip the
mongodb parameter by name."""

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
# The MongoDB adapter joins the suite with MAILRAMP_TEST_MONGODB=1 (the double) or a URL.
MONGODB = bool(MONGODB_URL) or os.environ.get("MAILRAMP_TEST_MONGODB") == "1"
CONTRACT_BACKENDS = [*BACKENDS, "mongodb"] if MONGODB else BACKENDS


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
