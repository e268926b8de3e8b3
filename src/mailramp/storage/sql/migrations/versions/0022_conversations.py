"""The inbox: each reply kept with its text, sanitised HTML and attachments list, and each
answer sent from it with its status (`conversation_messages`), and the kept attachments'
contents (`conversation_files`) (written 2026-12-06)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import JSON_DOCUMENT, id_column, time_column

revision = "0022_conversations"
down_revision = "0021_outgoing_webhooks"


def upgrade() -> None:
    op.create_table(
        "conversation_messages",
        id_column("_id", nullable=False),
        id_column("user_id", nullable=False),
        id_column("mailbox_id", nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        id_column("record_id", nullable=False),
        sa.Column("recipient_email", sa.String(length=254), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=True),
        sa.Column("references", JSON_DOCUMENT, nullable=False),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("to", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        time_column("sent_at", nullable=True),
        time_column("received_at", nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("quoted", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("attachments", JSON_DOCUMENT, nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
        time_column("read_at", nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("track_opens", sa.Boolean(), nullable=False),
        time_column("opened_at", nullable=True),
        time_column("human_opened_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_information_table._id"],
            name=op.f("fk_conversation_messages_user_id_user_information_table"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign_creation_table.campaign_id"],
            name=op.f("fk_conversation_messages_campaign_id_campaign_creation_table"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_conversation_messages")),
    )
    op.create_index(
        "uq_conversation_messages_mailbox_id_message_id",
        "conversation_messages",
        ["mailbox_id", "message_id"],
        unique=True,
    )
    op.create_index(
        "ix_conversation_messages_user_id_received_at",
        "conversation_messages",
        ["user_id", "received_at"],
    )
    op.create_index(
        "ix_conversation_messages_campaign_id_recipient_email",
        "conversation_messages",
        ["campaign_id", "recipient_email", "received_at"],
    )
    op.create_table(
        "conversation_files",
        id_column("_id", nullable=False),
        id_column("message_id", nullable=False),
        id_column("user_id", nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["conversation_messages._id"],
            name=op.f("fk_conversation_files_message_id_conversation_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_conversation_files")),
    )
    op.create_index("ix_conversation_files_message_id", "conversation_files", ["message_id"])


def downgrade() -> None:
    op.drop_table("conversation_files")
    op.drop_table("conversation_messages")
