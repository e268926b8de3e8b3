"""Admins and the audit log: `is_admin` and `first_user` on users (the earliest user of an
existing instance becomes its first user and admin), and `audit_log` (written 2026-12-07)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import id_column, time_column

revision = "0026_admins_and_audit_log"
down_revision = "0025_worker_heartbeats"


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): a batch rebuild would drop the table every other
    # table's foreign keys point at.
    op.add_column(
        "user_information_table",
        sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("user_information_table", sa.Column("first_user", sa.Boolean(), nullable=True))
    op.create_index(
        "uq_user_information_table_first_user", "user_information_table", ["first_user"],
        unique=True,
    )  # fmt: skip
    # An instance with users has an admin from now on: its earliest user.
    op.execute(
        "UPDATE user_information_table SET is_admin = true, first_user = true WHERE _id = "
        "(SELECT _id FROM user_information_table ORDER BY created_at, _id LIMIT 1)"
    )
    op.create_table(
        "audit_log",
        id_column("_id", nullable=False),
        time_column("at", nullable=False),
        id_column("actor_id", nullable=True),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        id_column("target_id", nullable=True),
        sa.Column("target", sa.String(254), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("_id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("uq_user_information_table_first_user", table_name="user_information_table")
    # DROP COLUMN exists in PostgreSQL and SQLite (3.35 on).
    op.execute("ALTER TABLE user_information_table DROP COLUMN first_user")
    op.execute("ALTER TABLE user_information_table DROP COLUMN is_admin")
