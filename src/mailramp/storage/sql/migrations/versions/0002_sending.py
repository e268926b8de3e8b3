"""Sending: suppression list, message format, sending window (written 2026-11-25)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import JSON_DOCUMENT, id_column, time_column

revision = "0002_sending"
down_revision = "0001_initial"


def upgrade() -> None:
    op.create_table(
        "suppression_list",
        id_column("_id", nullable=False),
        id_column("user_id", nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        time_column("created_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_information_table._id"],
            name=op.f("fk_suppression_list_user_id_user_information_table"),
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_suppression_list")),
    )
    with op.batch_alter_table("suppression_list", schema=None) as batch_op:
        batch_op.create_index(
            "uq_suppression_list_user_id_email", ["user_id", "email"], unique=True
        )

    with op.batch_alter_table("campaign_creation_table", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "message_format",
                sa.String(length=10),
                server_default=sa.text("'text'"),
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("sending_window", JSON_DOCUMENT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaign_creation_table", schema=None) as batch_op:
        batch_op.drop_column("sending_window")
        batch_op.drop_column("message_format")

    with op.batch_alter_table("suppression_list", schema=None) as batch_op:
        batch_op.drop_index("uq_suppression_list_user_id_email")

    op.drop_table("suppression_list")
