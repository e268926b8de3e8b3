"""The SQL adapter (SQLAlchemy 2, asyncio): SQLite by default, PostgreSQL in production."""

from mailramp.storage.sql.store import SqlStore

__all__ = ["SqlStore"]
