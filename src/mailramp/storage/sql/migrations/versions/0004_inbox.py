"""inbox polling position

Revision ID: 0004_inbox
Revises: 0003_tracking
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_inbox"
down_revision = "0003_tracking"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("linkbox_box_table", schema=None) as batch_op:
        batch_op.add_column(sa.Column("imap_uid_validity", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("imap_last_uid", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("inbox_checked_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("linkbox_box_table", schema=None) as batch_op:
        batch_op.drop_column("inbox_checked_at")
        batch_op.drop_column("imap_last_uid")
        batch_op.drop_column("imap_uid_validity")
