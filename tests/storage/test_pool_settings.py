"""MAILRAMP_DB_POOL_SIZE and MAILRAMP_DB_MAX_OVERFLOW reach the database clients."""

from __future__ import annotations

import pytest

from mailramp.config import Settings
from mailramp.runtime import open_store
from mailramp.storage.mongo.client import open_database
from tests.conftest import PostgresTarget


@pytest.mark.postgres
async def test_postgres_pool_follows_the_settings(postgres: PostgresTarget) -> None:
    settings = Settings(database_url=postgres.admin_url, db_pool_size=3, db_max_overflow=2)
    store = open_store(settings)
    try:
        pool = store.engine.pool  # type: ignore[attr-defined]
        assert (pool.size(), pool._max_overflow) == (3, 2)
    finally:
        await store.close()


async def test_mongodb_pool_is_pool_plus_overflow_unless_the_url_says() -> None:
    client, _ = open_database("mongodb://127.0.0.1:1/app", max_pool_size=7)
    given, _ = open_database("mongodb://127.0.0.1:1/app?maxPoolSize=3", max_pool_size=7)
    try:
        assert client.options.pool_options.max_pool_size == 7
        assert given.options.pool_options.max_pool_size == 3
    finally:
        await client.close()
        await given.close()
