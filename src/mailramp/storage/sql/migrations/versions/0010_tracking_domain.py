"""A mailbox's own tracking domain and what its last DNS check found (written 2026-12-05)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import time_column

revision = "0010_tracking_domain"
down_revision = "0009_inbound"

MOMENTS = ("tracking_domain_verified_at", "tracking_domain_checked_at")


def upgrade() -> None:
    with op.batch_alter_table("linkbox_box_table") as batch_op:
        batch_op.add_column(sa.Column("tracking_domain", sa.String(length=253), nullable=True))
        for name in MOMENTS:
            batch_op.add_column(time_column(name, nullable=True))
        batch_op.add_column(sa.Column("tracking_domain_problem", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("linkbox_box_table") as batch_op:
        batch_op.drop_column("tracking_domain_problem")
        for name in reversed(MOMENTS):
            batch_op.drop_column(name)
        batch_op.drop_column("tracking_domain")
