"""Applying the Alembic migrations to a live engine.

Migrations run on a connection mailramp opens itself, so they work from inside a running
event loop (`mailramp serve`) as well as from the CLI. On PostgreSQL an advisory lock keeps
several processes starting at once from migrating together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")
ADVISORY_LOCK_KEY = 0x6D61696C72616D70  # "mailramp"


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Every revision this code knows (a database at any other one was migrated by newer
    code)."""
    return {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest)."""
    async with engine.connect() as connection:
        await connection.run_sync(_migrate, command.upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Undo the migrations after `revision` (each one's `downgrade`: what they added goes)."""
    async with engine.connect() as connection:
        await connection.run_sync(_migrate, command.downgrade, revision)


def _migrate(connection: Connection, step: Any, revision: str) -> None:
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        connection.commit()
    try:
        config = alembic_config()
        config.attributes["connection"] = connection
        step(config, revision)
        connection.commit()
    finally:
        if postgres:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
            connection.commit()
