"""Sequences: follow-up steps, one email per (recipient, step), recipients' own time
zones, and the people of a campaign (written 2026-12-05).

Every existing campaign becomes a one-step campaign with nothing lost: its emails are step
1 (the unique index moves from (campaign, recipient) to (campaign, recipient, step)), and
each of its recipients gets a `campaign_recipients` row holding what already happened to
their one email, so the counters (which now count people) go on from where they were."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import JSON_DOCUMENT, id_column, time_column

revision = "0014_sequences"
down_revision = "0013_variants"

FIRSTS = (
    "sent_at",
    "delivered_at",
    "opened_at",
    "clicked_at",
    "replied_at",
    "bounced_at",
    "unsubscribed_at",
    "human_opened_at",
    "human_clicked_at",
    "auto_replied_at",
    "complained_at",
)


def upgrade() -> None:
    with op.batch_alter_table("campaign_creation_table") as batch_op:
        batch_op.add_column(sa.Column("campaign_steps", JSON_DOCUMENT, nullable=True))
        batch_op.add_column(
            sa.Column("auto_reply_postpone_days", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("email_tracking") as batch_op:
        batch_op.add_column(sa.Column("step", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch_op.drop_index("uq_email_tracking_campaign_id_recipient_email")
        batch_op.create_index(
            "uq_email_tracking_campaign_id_recipient_email_step",
            ["campaign_id", "recipient_email", "step"],
            unique=True,
        )
    op.create_table(
        "campaign_recipients",
        id_column("_id", nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        id_column("user_id", nullable=False),
        sa.Column("recipient_email", sa.String(length=254), nullable=False),
        *(time_column(name, nullable=True) for name in FIRSTS),
        time_column("stopped_at", nullable=True),
        time_column("created_at", nullable=False),
        time_column("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign_creation_table.campaign_id"],
            name=op.f("fk_campaign_recipients_campaign_id_campaign_creation_table"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_information_table._id"],
            name=op.f("fk_campaign_recipients_user_id_user_information_table"),
        ),
        sa.PrimaryKeyConstraint("_id", name=op.f("pk_campaign_recipients")),
    )
    with op.batch_alter_table("campaign_recipients") as batch_op:
        batch_op.create_index(
            "uq_campaign_recipients_campaign_id_recipient_email",
            ["campaign_id", "recipient_email"],
            unique=True,
        )
    # One person per existing email, with its firsts. The person's id is the email's: both
    # are ObjectIds, unique, and nothing else names a person by id yet.
    names = (
        "_id",
        "campaign_id",
        "user_id",
        "recipient_email",
        *FIRSTS,
        "created_at",
        "updated_at",
    )
    emails = sa.table("email_tracking", *(sa.column(name) for name in names))
    people = sa.table("campaign_recipients", *(sa.column(name) for name in names))
    op.execute(people.insert().from_select(list(names), sa.select(*emails.c)))


def downgrade() -> None:
    op.drop_table("campaign_recipients")
    # Follow-ups have no place in the older schema: only the first emails stay.
    op.execute("DELETE FROM email_tracking WHERE step <> 1")
    with op.batch_alter_table("email_tracking") as batch_op:
        batch_op.drop_index("uq_email_tracking_campaign_id_recipient_email_step")
        batch_op.create_index(
            "uq_email_tracking_campaign_id_recipient_email",
            ["campaign_id", "recipient_email"],
            unique=True,
        )
        batch_op.drop_column("timezone")
        batch_op.drop_column("step")
    with op.batch_alter_table("campaign_creation_table") as batch_op:
        batch_op.drop_column("auto_reply_postpone_days")
        batch_op.drop_column("campaign_steps")
