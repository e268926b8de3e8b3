"""The send queue and the suppression list on MongoDB."""

from __future__ import annotations

from mailramp.storage.mongo.base import MongoBase


class MongoSending(MongoBase):
    """SendingRepository and SuppressionRepository."""
