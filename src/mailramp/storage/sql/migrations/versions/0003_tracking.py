"""Tracking: event log, human engagement, tracking flags (written 2026-11-25)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import JSON_DOCUMENT, id_column, time_column

revision = "0003_tracking"
down_revision = "0002_sending"


def upgrade() -> None:
    op.create_table(
        "email_events",
        id_column("_id", nullable=False),
        id_column("record_id", nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        id_column("user_id", nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        time_column("occurred_at", nullable=False),
        sa.Column("machine", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("machine_reason", sa.String(length=50), nullable=True),
        sa.Column("details", JSON_DOCUMENT, nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["email_tracking._id"],
            name=op.f("fk_email_events_record_id_email_tracking"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_email_events")),
    )
    with op.batch_alter_table("email_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_email_events_campaign_id_occurred_at", ["campaign_id", "occurred_at"], unique=False
        )
        batch_op.create_index("ix_email_events_record_id", ["record_id"], unique=False)

    with op.batch_alter_table("campaign_creation_table", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("track_opens", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("track_clicks", sa.Boolean(), server_default=sa.true(), nullable=False)
        )

    with op.batch_alter_table("campaign_matrix", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("total_human_opened", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("total_human_clicks", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("total_auto_replied", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("human_open_rate", sa.Float(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("human_click_rate", sa.Float(), server_default="0", nullable=False)
        )

    with op.batch_alter_table("email_tracking", schema=None) as batch_op:
        batch_op.add_column(time_column("human_opened_at", nullable=True))
        batch_op.add_column(time_column("human_clicked_at", nullable=True))
        batch_op.add_column(time_column("auto_replied_at", nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("email_tracking", schema=None) as batch_op:
        batch_op.drop_column("auto_replied_at")
        batch_op.drop_column("human_clicked_at")
        batch_op.drop_column("human_opened_at")

    with op.batch_alter_table("campaign_matrix", schema=None) as batch_op:
        batch_op.drop_column("human_click_rate")
        batch_op.drop_column("human_open_rate")
        batch_op.drop_column("total_auto_replied")
        batch_op.drop_column("total_human_clicks")
        batch_op.drop_column("total_human_opened")

    with op.batch_alter_table("campaign_creation_table", schema=None) as batch_op:
        batch_op.drop_column("track_clicks")
        batch_op.drop_column("track_opens")

    with op.batch_alter_table("email_events", schema=None) as batch_op:
        batch_op.drop_index("ix_email_events_record_id")
        batch_op.drop_index("ix_email_events_campaign_id_occurred_at")

    op.drop_table("email_events")
