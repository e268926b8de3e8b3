"""Pacing a mailbox as its emails leave: until when its last send holds its turn (the gap
between two of its sends), and an index to count what it sent today (written 2026-12-06)."""

from __future__ import annotations

from alembic import op

from mailramp.storage.sql.migrations.columns import time_column

revision = "0015_send_gap"
down_revision = "0014_sequences"


def upgrade() -> None:
    with op.batch_alter_table("linkbox_box_table") as batch_op:
        batch_op.add_column(time_column("next_send_at", nullable=True))
    op.create_index(
        "ix_email_tracking_mailbox_id_sent_at", "email_tracking", ["mailbox_id", "sent_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_email_tracking_mailbox_id_sent_at", table_name="email_tracking")
    with op.batch_alter_table("linkbox_box_table") as batch_op:
        batch_op.drop_column("next_send_at")
