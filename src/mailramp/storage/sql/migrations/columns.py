"""The column kinds every migration uses, spelled once. What each returns must never
change: migrations already applied were written with it (a new kind gets a new name)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# JSONB on PostgreSQL, JSON text on SQLite. Datetimes are timestamptz on PostgreSQL and
# naive-UTC text on SQLite (the app's UTCDateTime type does the conversion).
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def id_column(name: str, *, nullable: bool) -> sa.Column[str]:
    """An ObjectId as 24 hex characters (`_id`, `user_id`, `mailbox_id`, …)."""
    return sa.Column(name, sa.String(length=24), nullable=nullable)


def time_column(name: str, *, nullable: bool) -> sa.Column[datetime]:
    """A moment, with its time zone."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)
