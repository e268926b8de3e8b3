"""The MongoDB Store: every repository protocol on PyMongo's async API, one module per
domain (the same modules as the SQL adapter's).

Every query on tenant data filters by the owner's `user_id` (an ObjectId); the unscoped
methods are the ones the protocols name so (secret scans, the inbox poller, workers).
"""

from __future__ import annotations

from mailramp.storage.mongo.auth import MongoAuth
from mailramp.storage.mongo.campaigns import MongoCampaigns
from mailramp.storage.mongo.conversations import MongoConversations
from mailramp.storage.mongo.deliverability import MongoDeliverability, MongoWarmup
from mailramp.storage.mongo.legacy import MongoLegacy
from mailramp.storage.mongo.mailboxes import MongoMailboxes
from mailramp.storage.mongo.metrics import MongoMetrics
from mailramp.storage.mongo.queue import MongoQueue
from mailramp.storage.mongo.secrets import MongoSecrets
from mailramp.storage.mongo.suppression import MongoSuppression
from mailramp.storage.mongo.tracking import MongoTracking
from mailramp.storage.mongo.users import MongoUsers
from mailramp.storage.mongo.webhooks import MongoWebhooks


class MongoStore(
    MongoUsers,
    MongoMailboxes,
    MongoCampaigns,
    MongoConversations,
    MongoDeliverability,
    MongoWarmup,
    MongoTracking,
    MongoQueue,
    MongoSuppression,
    MongoMetrics,
    MongoLegacy,
    MongoAuth,
    MongoSecrets,
    MongoWebhooks,
):
    """The Store on MongoDB (standalone servers included: no transactions needed)."""
