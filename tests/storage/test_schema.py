"""The migrated database is the schema: names from docs/schema.md, indexes from DESIGN.md."""

from __future__ import annotations

import re
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from mailramp.storage.sql import tables
from mailramp.storage.sql.migrate import head_revision
from tests.conftest import Services

SCHEMA = Path(__file__).parents[2] / "docs" / "schema.md"


def schema_fields() -> dict[str, list[str]]:
    """Collection → field names, read from the schema document itself."""
    fields: dict[str, list[str]] = {}
    current = None
    for line in SCHEMA.read_text().splitlines():
        heading = re.match(r"### \d+\. `(\w+)`", line)
        if heading:
            current = heading.group(1)
            fields[current] = []
        field = re.match(r"- `(\w+)` \(", line)
        if field and current:
            fields[current].append(field.group(1))
    return fields


def test_schema_document_is_parsed() -> None:
    fields = schema_fields()
    assert list(fields) == [
        "user_information_table",
        "linkbox_box_table",
        "campaign_creation_table",
        "campaign_matrix",
        "email_tracking",
    ]
    assert len(fields["campaign_matrix"]) == 17


async def test_every_schema_field_is_a_column_with_its_exact_name(services: Services) -> None:
    async with services.store.engine.connect() as connection:
        columns = await connection.run_sync(
            lambda sync: {
                name: [c["name"] for c in inspect(sync).get_columns(name)]
                for name in inspect(sync).get_table_names()
            }
        )
    for collection, names in schema_fields().items():
        assert collection in columns, collection
        missing = [name for name in names if name not in columns[collection]]
        assert missing == [], f"{collection} lacks {missing}"
    assert {"warm_up_emails_table", "email_campaigns"} <= set(columns)


async def test_migrations_build_exactly_the_declared_tables(services: Services) -> None:
    assert await services.store.schema_version() == head_revision()
    async with services.store.engine.connect() as connection:
        differences = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), tables.metadata)
        )
    assert differences == []


async def test_unique_and_lookup_indexes_exist(services: Services) -> None:
    async with services.store.engine.connect() as connection:
        indexes = await connection.run_sync(
            lambda sync: {
                name: {
                    tuple(index["column_names"]): bool(index["unique"])
                    for index in inspect(sync).get_indexes(name)
                }
                for name in inspect(sync).get_table_names()
            }
        )
    expected = {
        "user_information_table": {
            ("login_id",): True,
            ("email",): True,
            ("clerk_user_id",): True,
            ("created_at",): False,
        },
        "linkbox_box_table": {("user_id", "email"): True, ("status",): False},
        "campaign_creation_table": {
            ("campaign_id",): True,
            ("user_id", "created_at"): False,
            ("mailbox_id",): False,
            ("status", "start_time"): False,
            ("start_time",): False,
        },
        "campaign_matrix": {("campaign_id",): True, ("user_id",): False, ("mailbox_id",): False},
        "email_tracking": {
            ("campaign_id", "recipient_email", "step"): True,
            ("status", "scheduled_at"): False,
            ("message_id",): False,
            ("user_id",): False,
            ("mailbox_id",): False,
        },
        "campaign_recipients": {("campaign_id", "recipient_email"): True},
    }
    for table, wanted in expected.items():
        for columns, unique in wanted.items():
            assert indexes[table].get(columns) is unique, (table, columns)
