"""Inbox polling position (written 2026-11-25)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import time_column

revision = "0004_inbox"
down_revision = "0003_tracking"


def upgrade() -> None:
    with op.batch_alter_table("linkbox_box_table", schema=None) as batch_op:
        batch_op.add_column(sa.Column("imap_uid_validity", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("imap_last_uid", sa.BigInteger(), nullable=True))
        batch_op.add_column(time_column("inbox_checked_at", nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("linkbox_box_table", schema=None) as batch_op:
        batch_op.drop_column("inbox_checked_at")
        batch_op.drop_column("imap_last_uid")
        batch_op.drop_column("imap_uid_validity")
