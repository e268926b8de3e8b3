"""A mailbox's ramp (the target is `daily_limit`; existing mailboxes are already warm:
they have been sending), brakes on mailboxes and campaigns (`brake_rules` NULL: the
defaults), and each mailbox's day-by-day history (`mailbox_days`) that the ramp, the health
figures and the charts read (written 2026-12-06)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import JSON_DOCUMENT, id_column, time_column

revision = "0017_ramp_and_brakes"
down_revision = "0016_domain_checks"

BRAKE_COLUMNS = (
    "brake_rules",
    "brake_kind",
    "brake_reason",
    "braked_at",
    "brake_resumed_at",
    "brake_resumed_rate",
)


def _brake_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("brake_rules", JSON_DOCUMENT, nullable=True),
        sa.Column("brake_kind", sa.String(length=20), nullable=True),
        sa.Column("brake_reason", sa.Text(), nullable=True),
        time_column("braked_at", nullable=True),
        time_column("brake_resumed_at", nullable=True),
        sa.Column("brake_resumed_rate", sa.Float(), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("linkbox_box_table") as batch_op:
        batch_op.add_column(
            sa.Column("already_warm", sa.Boolean(), nullable=False, server_default="1")
        )
        batch_op.add_column(
            sa.Column("ramp_start", sa.Integer(), nullable=False, server_default="10")
        )
        batch_op.add_column(
            sa.Column("ramp_step", sa.Integer(), nullable=False, server_default="2")
        )
        for column in _brake_columns():
            batch_op.add_column(column)
    with op.batch_alter_table("campaign_creation_table") as batch_op:
        for column in _brake_columns():
            batch_op.add_column(column)
    counts = (
        "campaign_sent",
        "bounced",
        "complained",
        "replied",
        "warmup_sent",
        "warmup_inbox",
        "warmup_spam",
        "warmup_other",
    )
    op.create_table(
        "mailbox_days",
        id_column("_id", nullable=False),
        id_column("mailbox_id", nullable=False),
        id_column("user_id", nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in counts),
        sa.Column("braked", sa.Boolean(), nullable=False),
        sa.Column("daily_limit", sa.Integer(), nullable=True),
        time_column("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["linkbox_box_table._id"],
            name=op.f("fk_mailbox_days_mailbox_id_linkbox_box_table"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_information_table._id"],
            name=op.f("fk_mailbox_days_user_id_user_information_table"),
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_mailbox_days")),
    )
    with op.batch_alter_table("mailbox_days") as batch_op:
        batch_op.create_index("uq_mailbox_days_mailbox_id_day", ["mailbox_id", "day"], unique=True)


def downgrade() -> None:
    op.drop_table("mailbox_days")
    with op.batch_alter_table("campaign_creation_table") as batch_op:
        for name in BRAKE_COLUMNS:
            batch_op.drop_column(name)
    with op.batch_alter_table("linkbox_box_table") as batch_op:
        for name in (*BRAKE_COLUMNS, "ramp_step", "ramp_start", "already_warm"):
            batch_op.drop_column(name)
