"""The MongoDB Store: every repository protocol on PyMongo's async API."""

from __future__ import annotations

from mailramp.storage.mongo.accounts import MongoAccounts
from mailramp.storage.mongo.auth import MongoAuth
from mailramp.storage.mongo.legacy import MongoLegacy
from mailramp.storage.mongo.sending import MongoSending
from mailramp.storage.mongo.tracking import MongoTracking


class MongoStore(MongoAccounts, MongoSending, MongoTracking, MongoAuth, MongoLegacy):
    """The Store on MongoDB (standalone servers included: no transactions needed)."""
