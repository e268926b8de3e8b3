"""The warm-up pool: whether each mailbox takes part, its warm-up ramp, reply share and
business-hours zone, and `warmup_emails`, what the pool's mailboxes sent each other and
where each landed (the schema's `warm_up_emails_table` stays the previous application's,
read-only) (written 2026-12-06)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import id_column, time_column

revision = "0018_warmup"
down_revision = "0017_ramp_and_brakes"

MAILBOX_COLUMNS = (
    ("warmup_enabled", sa.Boolean(), "0"),
    ("warmup_start", sa.Integer(), "2"),
    ("warmup_step", sa.Integer(), "2"),
    ("warmup_max", sa.Integer(), "20"),
    ("warmup_reply_percent", sa.Integer(), "30"),
    ("warmup_timezone", sa.String(length=64), "UTC"),
)


def upgrade() -> None:
    with op.batch_alter_table("linkbox_box_table") as batch_op:
        for name, kind, default in MAILBOX_COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=False, server_default=default))
    op.create_table(
        "warmup_emails",
        id_column("_id", nullable=False),
        id_column("user_id", nullable=False),
        id_column("mailbox_id", nullable=False),
        id_column("to_mailbox_id", nullable=False),
        id_column("to_user_id", nullable=False),
        id_column("thread_id", nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=250), nullable=False),
        sa.Column("in_reply_to", sa.String(length=250), nullable=True),
        sa.Column("references", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        time_column("planned_at", nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        time_column("sent_at", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        time_column("found_at", nullable=True),
        sa.Column("placement", sa.String(length=10), nullable=True),
        time_column("rescued_at", nullable=True),
        time_column("read_at", nullable=True),
        sa.Column("reply_planned", sa.Boolean(), nullable=False),
        time_column("created_at", nullable=False),
        time_column("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["linkbox_box_table._id"],
            name=op.f("fk_warmup_emails_mailbox_id_linkbox_box_table"),
        ),
        sa.ForeignKeyConstraint(
            ["to_mailbox_id"],
            ["linkbox_box_table._id"],
            name=op.f("fk_warmup_emails_to_mailbox_id_linkbox_box_table"),
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_warmup_emails")),
    )
    with op.batch_alter_table("warmup_emails") as batch_op:
        batch_op.create_index("uq_warmup_emails_message_id", ["message_id"], unique=True)
        batch_op.create_index("ix_warmup_emails_status_planned_at", ["status", "planned_at"])
        batch_op.create_index("ix_warmup_emails_mailbox_id_sent_at", ["mailbox_id", "sent_at"])
        batch_op.create_index(
            "ix_warmup_emails_to_mailbox_id_found_at", ["to_mailbox_id", "found_at"]
        )


def downgrade() -> None:
    op.drop_table("warmup_emails")
    with op.batch_alter_table("linkbox_box_table") as batch_op:
        for name, _, _ in reversed(MAILBOX_COLUMNS):
            batch_op.drop_column(name)
