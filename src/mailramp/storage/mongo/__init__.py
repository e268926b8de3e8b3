"""The MongoDB adapter: the schema's native form (docs/data-model.md), selected by a
mongodb:// or mongodb+srv:// MAILRAMP_DATABASE_URL."""

from mailramp.storage.mongo.store import MongoStore

__all__ = ["MongoStore"]
