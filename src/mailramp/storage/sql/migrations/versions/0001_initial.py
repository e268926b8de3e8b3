"""Initial schema (written 2026-11-25)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import JSON_DOCUMENT, id_column, time_column

revision = "0001_initial"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "email_campaigns",
        id_column("_id", nullable=False),
        id_column("user_id", nullable=True),
        time_column("created_at", nullable=True),
        sa.Column("document", JSON_DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_email_campaigns")),
    )
    with op.batch_alter_table("email_campaigns", schema=None) as batch_op:
        batch_op.create_index("ix_email_campaigns_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_email_campaigns_user_id", ["user_id"], unique=False)

    op.create_table(
        "user_information_table",
        id_column("_id", nullable=False),
        id_column("user_id", nullable=False),
        sa.Column("user_name", sa.String(length=200), nullable=False),
        sa.Column("login_id", sa.String(length=254), nullable=False),
        sa.Column("password", sa.Text(), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("clerk_user_id", sa.String(length=200), nullable=True),
        time_column("created_at", nullable=False),
        time_column("updated_at", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        time_column("last_login", nullable=True),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_user_information_table")),
    )
    with op.batch_alter_table("user_information_table", schema=None) as batch_op:
        batch_op.create_index("ix_user_information_table_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            "uq_user_information_table_clerk_user_id", ["clerk_user_id"], unique=True
        )
        batch_op.create_index("uq_user_information_table_email", ["email"], unique=True)
        batch_op.create_index("uq_user_information_table_login_id", ["login_id"], unique=True)

    op.create_table(
        "warm_up_emails_table",
        id_column("_id", nullable=False),
        id_column("user_id", nullable=True),
        time_column("created_at", nullable=True),
        sa.Column("document", JSON_DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_warm_up_emails_table")),
    )
    with op.batch_alter_table("warm_up_emails_table", schema=None) as batch_op:
        batch_op.create_index("ix_warm_up_emails_table_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_warm_up_emails_table_user_id", ["user_id"], unique=False)

    op.create_table(
        "linkbox_box_table",
        id_column("_id", nullable=False),
        id_column("mailbox_id", nullable=False),
        id_column("user_id", nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password", sa.Text(), nullable=True),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        time_column("token_expires_at", nullable=True),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("user_profile", JSON_DOCUMENT, nullable=False),
        sa.Column("is_primary", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        time_column("last_used", nullable=True),
        time_column("created_at", nullable=False),
        time_column("updated_at", nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("daily_limit", sa.Integer(), nullable=False),
        sa.Column("smtp_host", sa.String(length=253), nullable=True),
        sa.Column("smtp_port", sa.Integer(), nullable=True),
        sa.Column("smtp_security", sa.String(length=10), nullable=True),
        sa.Column("smtp_username", sa.String(length=254), nullable=True),
        sa.Column("imap_host", sa.String(length=253), nullable=True),
        sa.Column("imap_port", sa.Integer(), nullable=True),
        sa.Column("imap_security", sa.String(length=10), nullable=True),
        sa.Column("imap_username", sa.String(length=254), nullable=True),
        time_column("unlinked_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_information_table._id"],
            name=op.f("fk_linkbox_box_table_user_id_user_information_table"),
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_linkbox_box_table")),
    )
    with op.batch_alter_table("linkbox_box_table", schema=None) as batch_op:
        batch_op.create_index("ix_linkbox_box_table_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_linkbox_box_table_status", ["status"], unique=False)
        batch_op.create_index(
            "uq_linkbox_box_table_primary",
            ["user_id"],
            unique=True,
            sqlite_where=sa.text("is_primary"),
            postgresql_where=sa.text("is_primary"),
        )
        batch_op.create_index(
            "uq_linkbox_box_table_user_id_email", ["user_id", "email"], unique=True
        )

    op.create_table(
        "campaign_creation_table",
        id_column("_id", nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        id_column("user_id", nullable=False),
        id_column("mailbox_id", nullable=False),
        sa.Column("campaign_name", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        time_column("start_time", nullable=False),
        time_column("end_time", nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total_recipients", sa.Integer(), server_default="0", nullable=False),
        time_column("created_at", nullable=False),
        time_column("updated_at", nullable=False),
        id_column("created_by", nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["user_information_table._id"],
            name=op.f("fk_campaign_creation_table_created_by_user_information_table"),
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["linkbox_box_table._id"],
            name=op.f("fk_campaign_creation_table_mailbox_id_linkbox_box_table"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_information_table._id"],
            name=op.f("fk_campaign_creation_table_user_id_user_information_table"),
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_campaign_creation_table")),
    )
    with op.batch_alter_table("campaign_creation_table", schema=None) as batch_op:
        batch_op.create_index("ix_campaign_creation_table_mailbox_id", ["mailbox_id"], unique=False)
        batch_op.create_index("ix_campaign_creation_table_start_time", ["start_time"], unique=False)
        batch_op.create_index(
            "ix_campaign_creation_table_status_start_time", ["status", "start_time"], unique=False
        )
        batch_op.create_index(
            "ix_campaign_creation_table_user_id_created_at", ["user_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "uq_campaign_creation_table_campaign_id", ["campaign_id"], unique=True
        )

    op.create_table(
        "campaign_matrix",
        id_column("_id", nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        id_column("user_id", nullable=False),
        id_column("mailbox_id", nullable=False),
        sa.Column("total_sent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_delivered", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_opened", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_clicks", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_bounced", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_replied", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_unsubscribed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("open_rate", sa.Float(), server_default="0", nullable=False),
        sa.Column("click_rate", sa.Float(), server_default="0", nullable=False),
        sa.Column("bounce_rate", sa.Float(), server_default="0", nullable=False),
        sa.Column("reply_rate", sa.Float(), server_default="0", nullable=False),
        time_column("created_at", nullable=False),
        time_column("last_updated", nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign_creation_table.campaign_id"],
            name=op.f("fk_campaign_matrix_campaign_id_campaign_creation_table"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["linkbox_box_table._id"],
            name=op.f("fk_campaign_matrix_mailbox_id_linkbox_box_table"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_information_table._id"],
            name=op.f("fk_campaign_matrix_user_id_user_information_table"),
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_campaign_matrix")),
    )
    with op.batch_alter_table("campaign_matrix", schema=None) as batch_op:
        batch_op.create_index("ix_campaign_matrix_mailbox_id", ["mailbox_id"], unique=False)
        batch_op.create_index("ix_campaign_matrix_user_id", ["user_id"], unique=False)
        batch_op.create_index("uq_campaign_matrix_campaign_id", ["campaign_id"], unique=True)

    op.create_table(
        "email_tracking",
        id_column("_id", nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        id_column("user_id", nullable=False),
        id_column("mailbox_id", nullable=False),
        sa.Column("recipient_email", sa.String(length=254), nullable=False),
        sa.Column("merge_variables", JSON_DOCUMENT, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        time_column("scheduled_at", nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        time_column("next_attempt_at", nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        time_column("lease_expires_at", nullable=True),
        sa.Column("message_id", sa.String(length=250), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        time_column("sent_at", nullable=True),
        time_column("delivered_at", nullable=True),
        time_column("opened_at", nullable=True),
        time_column("clicked_at", nullable=True),
        time_column("replied_at", nullable=True),
        time_column("bounced_at", nullable=True),
        time_column("unsubscribed_at", nullable=True),
        time_column("created_at", nullable=False),
        time_column("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign_creation_table.campaign_id"],
            name=op.f("fk_email_tracking_campaign_id_campaign_creation_table"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["linkbox_box_table._id"],
            name=op.f("fk_email_tracking_mailbox_id_linkbox_box_table"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_information_table._id"],
            name=op.f("fk_email_tracking_user_id_user_information_table"),
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_email_tracking")),
    )
    with op.batch_alter_table("email_tracking", schema=None) as batch_op:
        batch_op.create_index("ix_email_tracking_mailbox_id", ["mailbox_id"], unique=False)
        batch_op.create_index("ix_email_tracking_message_id", ["message_id"], unique=False)
        batch_op.create_index(
            "ix_email_tracking_status_scheduled_at", ["status", "scheduled_at"], unique=False
        )
        batch_op.create_index("ix_email_tracking_user_id", ["user_id"], unique=False)
        batch_op.create_index(
            "uq_email_tracking_campaign_id_recipient_email",
            ["campaign_id", "recipient_email"],
            unique=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("email_tracking", schema=None) as batch_op:
        batch_op.drop_index("uq_email_tracking_campaign_id_recipient_email")
        batch_op.drop_index("ix_email_tracking_user_id")
        batch_op.drop_index("ix_email_tracking_status_scheduled_at")
        batch_op.drop_index("ix_email_tracking_message_id")
        batch_op.drop_index("ix_email_tracking_mailbox_id")

    op.drop_table("email_tracking")
    with op.batch_alter_table("campaign_matrix", schema=None) as batch_op:
        batch_op.drop_index("uq_campaign_matrix_campaign_id")
        batch_op.drop_index("ix_campaign_matrix_user_id")
        batch_op.drop_index("ix_campaign_matrix_mailbox_id")

    op.drop_table("campaign_matrix")
    with op.batch_alter_table("campaign_creation_table", schema=None) as batch_op:
        batch_op.drop_index("uq_campaign_creation_table_campaign_id")
        batch_op.drop_index("ix_campaign_creation_table_user_id_created_at")
        batch_op.drop_index("ix_campaign_creation_table_status_start_time")
        batch_op.drop_index("ix_campaign_creation_table_start_time")
        batch_op.drop_index("ix_campaign_creation_table_mailbox_id")

    op.drop_table("campaign_creation_table")
    with op.batch_alter_table("linkbox_box_table", schema=None) as batch_op:
        batch_op.drop_index("uq_linkbox_box_table_user_id_email")
        batch_op.drop_index(
            "uq_linkbox_box_table_primary",
            sqlite_where=sa.text("is_primary"),
            postgresql_where=sa.text("is_primary"),
        )
        batch_op.drop_index("ix_linkbox_box_table_status")
        batch_op.drop_index("ix_linkbox_box_table_created_at")

    op.drop_table("linkbox_box_table")
    with op.batch_alter_table("warm_up_emails_table", schema=None) as batch_op:
        batch_op.drop_index("ix_warm_up_emails_table_user_id")
        batch_op.drop_index("ix_warm_up_emails_table_created_at")

    op.drop_table("warm_up_emails_table")
    with op.batch_alter_table("user_information_table", schema=None) as batch_op:
        batch_op.drop_index("uq_user_information_table_login_id")
        batch_op.drop_index("uq_user_information_table_email")
        batch_op.drop_index("uq_user_information_table_clerk_user_id")
        batch_op.drop_index("ix_user_information_table_created_at")

    op.drop_table("user_information_table")
    with op.batch_alter_table("email_campaigns", schema=None) as batch_op:
        batch_op.drop_index("ix_email_campaigns_user_id")
        batch_op.drop_index("ix_email_campaigns_created_at")

    op.drop_table("email_campaigns")
