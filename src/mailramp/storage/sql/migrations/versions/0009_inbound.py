"""Complaints (a record's first, a campaign's counter and rate), the indexes that match a
report quoting no Message-ID by address, and the bounces and complaints that match no
sent email, kept to be seen (written 2026-12-05)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import JSON_DOCUMENT, id_column, time_column

revision = "0009_inbound"
down_revision = "0008_webhook_deliveries"

# (table, column, type): what this revision adds to existing tables, zero by default.
ADDED = (
    ("campaign_matrix", "total_complained", sa.Integer()),
    ("campaign_matrix", "complaint_rate", sa.Float()),
)
# The record's first complaint.
COMPLAINED_AT = "complained_at"
# (name, columns) on email_tracking.
TRACKING_INDEXES = (
    ("ix_email_tracking_mailbox_id_recipient_email", ["mailbox_id", "recipient_email"]),
    ("ix_email_tracking_user_id_recipient_email", ["user_id", "recipient_email"]),
)
# (name, length) of the text fields of an unmatched report, all optional.
UNMATCHED_TEXT = (
    ("recipient", 254),
    ("status", 20),
    ("reason", 30),
    ("sender", 300),
    ("subject", 300),
    ("message_id", 250),
)


def upgrade() -> None:
    for table, name, kind in ADDED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column(name, kind, server_default="0", nullable=False))
    with op.batch_alter_table("email_tracking") as batch_op:
        batch_op.add_column(time_column(COMPLAINED_AT, nullable=True))
        for index, columns in TRACKING_INDEXES:
            batch_op.create_index(index, columns, unique=False)
    owner = sa.ForeignKey(
        "user_information_table._id",
        name=op.f("fk_inbound_unmatched_user_id_user_information_table"),
    )
    op.create_table(
        "inbound_unmatched",
        sa.Column("_id", sa.String(length=24), primary_key=True),
        sa.Column("user_id", sa.String(length=24), owner, nullable=False),
        id_column("mailbox_id", nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        *(sa.Column(name, sa.String(length=length)) for name, length in UNMATCHED_TEXT),
        sa.Column("details", JSON_DOCUMENT, nullable=False),
        time_column("received_at", nullable=False),
    )
    op.create_index(
        "ix_inbound_unmatched_user_id_received_at", "inbound_unmatched", ["user_id", "received_at"]
    )


def downgrade() -> None:
    op.drop_table("inbound_unmatched")
    with op.batch_alter_table("email_tracking") as batch_op:
        for index, _ in reversed(TRACKING_INDEXES):
            batch_op.drop_index(index)
        batch_op.drop_column(COMPLAINED_AT)
    for table, name, _ in reversed(ADDED):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column(name)
