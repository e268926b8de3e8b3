"""Outgoing webhooks: each user's endpoints (`webhook_endpoints`, secrets encrypted, the
cursor into the event log), the messages queued for them (`webhook_messages`) and every
delivery attempt (`webhook_attempts`) (written 2026-12-06)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import JSON_DOCUMENT, id_column, time_column

revision = "0021_outgoing_webhooks"
down_revision = "0020_lead_status"


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        id_column("_id", nullable=False),
        id_column("user_id", nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("kinds", JSON_DOCUMENT, nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        time_column("previous_secret_until", nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        time_column("disabled_at", nullable=True),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        time_column("failing_since", nullable=True),
        time_column("last_success_at", nullable=True),
        time_column("created_at", nullable=False),
        time_column("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_information_table._id"],
            name=op.f("fk_webhook_endpoints_user_id_user_information_table"),
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index("ix_webhook_endpoints_user_id", "webhook_endpoints", ["user_id"])
    op.create_table(
        "webhook_messages",
        id_column("_id", nullable=False),
        id_column("endpoint_id", nullable=False),
        id_column("user_id", nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        id_column("event_id", nullable=False),
        sa.Column("person", sa.String(length=400), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        time_column("next_attempt_at", nullable=True),
        time_column("lease_until", nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        time_column("delivered_at", nullable=True),
        time_column("created_at", nullable=False),
        time_column("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints._id"],
            name=op.f("fk_webhook_messages_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_webhook_messages")),
    )
    op.create_index(
        "uq_webhook_messages_endpoint_id_event_id", "webhook_messages", ["endpoint_id", "event_id"],
        unique=True,
    )  # fmt: skip
    op.create_index(
        "ix_webhook_messages_status_next_attempt_at",
        "webhook_messages",
        ["status", "next_attempt_at"],
    )
    op.create_index(
        "ix_webhook_messages_endpoint_id_person_seq",
        "webhook_messages",
        ["endpoint_id", "person", "seq"],
    )
    op.create_index(
        "ix_webhook_messages_endpoint_id_created_at",
        "webhook_messages",
        ["endpoint_id", "created_at"],
    )
    op.create_table(
        "webhook_attempts",
        id_column("_id", nullable=False),
        id_column("message_id", nullable=False),
        id_column("endpoint_id", nullable=False),
        id_column("user_id", nullable=False),
        time_column("attempted_at", nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["webhook_messages._id"],
            name=op.f("fk_webhook_attempts_message_id_webhook_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index("ix_webhook_attempts_message_id", "webhook_attempts", ["message_id"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_messages")
    op.drop_table("webhook_endpoints")
