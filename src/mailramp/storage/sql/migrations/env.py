"""Alembic environment: runs on the connection mailramp hands over (see `migrate.py`)."""

from __future__ import annotations

from alembic import context

from mailramp.storage.sql.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds tables when needed.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
