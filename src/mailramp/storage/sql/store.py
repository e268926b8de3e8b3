"""The SQL Store: every repository protocol on SQLAlchemy Core, one module per domain (the
same modules as the MongoDB adapter's).

Each public method is one transaction. Writes go through `_write()` (BEGIN IMMEDIATE on
SQLite), reads through `_read()` (base.py). Every query on tenant data has `user_id` in its
WHERE clause; the only unscoped methods say so in their names or docstrings.
"""

from __future__ import annotations

from mailramp.storage.sql.auth import SqlAuth
from mailramp.storage.sql.campaigns import SqlCampaigns
from mailramp.storage.sql.conversations import SqlConversations
from mailramp.storage.sql.deliverability import SqlDeliverability
from mailramp.storage.sql.legacy import SqlLegacy
from mailramp.storage.sql.mailboxes import SqlMailboxes
from mailramp.storage.sql.metrics import SqlMetrics
from mailramp.storage.sql.queue import SqlQueue
from mailramp.storage.sql.secrets import SqlSecrets
from mailramp.storage.sql.suppression import SqlSuppression
from mailramp.storage.sql.tracking import SqlTracking
from mailramp.storage.sql.users import SqlUsers
from mailramp.storage.sql.webhooks import SqlWebhooks


class SqlStore(
    SqlUsers,
    SqlMailboxes,
    SqlCampaigns,
    SqlConversations,
    SqlDeliverability,
    SqlTracking,
    SqlQueue,
    SqlSuppression,
    SqlMetrics,
    SqlLegacy,
    SqlAuth,
    SqlSecrets,
    SqlWebhooks,
):
    """The Store on SQLite (the embedded default) or PostgreSQL."""
