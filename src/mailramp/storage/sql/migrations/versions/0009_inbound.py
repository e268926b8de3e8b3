"""Complaints (a record's first, a campaign's counter and rate) and the bounces and
complaints that match no sent email, kept to be seen (written 2026-12-05)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import JSON_DOCUMENT, id_column, time_column

revision = "0009_inbound"
down_revision = "0008_webhook_deliveries"


def upgrade() -> None:
    with op.batch_alter_table("campaign_matrix", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("total_complained", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("complaint_rate", sa.Float(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("email_tracking", schema=None) as batch_op:
        batch_op.add_column(time_column("complained_at", nullable=True))
        batch_op.create_index(
            "ix_email_tracking_mailbox_id_recipient_email",
            ["mailbox_id", "recipient_email"],
            unique=False,
        )
        batch_op.create_index(
            "ix_email_tracking_user_id_recipient_email",
            ["user_id", "recipient_email"],
            unique=False,
        )

    op.create_table(
        "inbound_unmatched",
        id_column("_id", nullable=False),
        id_column("user_id", nullable=False),
        id_column("mailbox_id", nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("reason", sa.String(length=30), nullable=True),
        sa.Column("sender", sa.String(length=300), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=True),
        sa.Column("message_id", sa.String(length=250), nullable=True),
        sa.Column("details", JSON_DOCUMENT, nullable=False),
        time_column("received_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_information_table._id"],
            name=op.f("fk_inbound_unmatched_user_id_user_information_table"),
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_inbound_unmatched")),
    )
    op.create_index(
        "ix_inbound_unmatched_user_id_received_at",
        "inbound_unmatched",
        ["user_id", "received_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_unmatched_user_id_received_at", table_name="inbound_unmatched")
    op.drop_table("inbound_unmatched")
    with op.batch_alter_table("email_tracking", schema=None) as batch_op:
        batch_op.drop_index("ix_email_tracking_user_id_recipient_email")
        batch_op.drop_index("ix_email_tracking_mailbox_id_recipient_email")
        batch_op.drop_column("complained_at")
    with op.batch_alter_table("campaign_matrix", schema=None) as batch_op:
        batch_op.drop_column("complaint_rate")
        batch_op.drop_column("total_complained")
