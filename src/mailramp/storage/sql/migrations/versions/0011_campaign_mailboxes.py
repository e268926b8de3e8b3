"""Campaigns that send from several mailboxes: `mailbox_ids`, the schema's `mailbox_id`
first (written 2026-12-05). Existing campaigns keep NULL, read as their one mailbox."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import JSON_DOCUMENT

revision = "0011_campaign_mailboxes"
down_revision = "0010_tracking_domain"


def upgrade() -> None:
    with op.batch_alter_table("campaign_creation_table") as batch_op:
        batch_op.add_column(sa.Column("mailbox_ids", JSON_DOCUMENT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaign_creation_table") as batch_op:
        batch_op.drop_column("mailbox_ids")
