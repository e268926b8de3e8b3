"""Lead statuses: each person's (`campaign_recipients.lead_status`, when it was set) and the
users' own labels (`lead_labels`) (written 2026-12-06)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import id_column, time_column

revision = "0020_lead_status"
down_revision = "0019_event_log"


def upgrade() -> None:
    with op.batch_alter_table("campaign_recipients") as batch_op:
        batch_op.add_column(sa.Column("lead_status", sa.String(length=60), nullable=True))
        batch_op.add_column(time_column("lead_status_at", nullable=True))
    op.create_index(
        "ix_campaign_recipients_user_id_lead_status",
        "campaign_recipients",
        ["user_id", "lead_status"],
    )
    op.create_table(
        "lead_labels",
        id_column("_id", nullable=False),
        id_column("user_id", nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("key", sa.String(length=60), nullable=False),
        time_column("created_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_information_table._id"],
            name=op.f("fk_lead_labels_user_id_user_information_table"),
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_lead_labels")),
    )
    op.create_index("uq_lead_labels_user_id_key", "lead_labels", ["user_id", "key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_lead_labels_user_id_key", table_name="lead_labels")
    op.drop_table("lead_labels")
    op.drop_index("ix_campaign_recipients_user_id_lead_status", table_name="campaign_recipients")
    with op.batch_alter_table("campaign_recipients") as batch_op:
        batch_op.drop_column("lead_status_at")
        batch_op.drop_column("lead_status")
