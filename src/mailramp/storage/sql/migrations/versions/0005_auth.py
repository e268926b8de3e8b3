"""Auth: api keys, sessions, login throttling (written 2026-11-25)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import id_column, time_column

revision = "0005_auth"
down_revision = "0004_inbox"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        id_column("_id", nullable=False),
        id_column("user_id", nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=20), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        time_column("created_at", nullable=False),
        time_column("last_used_at", nullable=True),
        time_column("revoked_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_information_table._id"],
            name=op.f("fk_api_keys_user_id_user_information_table"),
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_api_keys")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index("ix_api_keys_user_id", ["user_id"], unique=False)
        batch_op.create_index("uq_api_keys_key_hash", ["key_hash"], unique=True)

    op.create_table(
        "sessions",
        id_column("_id", nullable=False),
        id_column("user_id", nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        time_column("created_at", nullable=False),
        time_column("expires_at", nullable=False),
        time_column("revoked_at", nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_information_table._id"],
            name=op.f("fk_sessions_user_id_user_information_table"),
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index("ix_sessions_user_id", ["user_id"], unique=False)
        batch_op.create_index("uq_sessions_token_hash", ["token_hash"], unique=True)

    with op.batch_alter_table("user_information_table", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(time_column("last_failed_login_at", nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_information_table", schema=None) as batch_op:
        batch_op.drop_column("last_failed_login_at")
        batch_op.drop_column("failed_logins")

    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("uq_sessions_token_hash")
        batch_op.drop_index("ix_sessions_user_id")

    op.drop_table("sessions")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("uq_api_keys_key_hash")
        batch_op.drop_index("ix_api_keys_user_id")

    op.drop_table("api_keys")
