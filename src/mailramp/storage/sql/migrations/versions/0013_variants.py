"""A/B variants of a campaign's email, and the variant each recipient gets
(written 2026-12-05)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import JSON_DOCUMENT

revision = "0013_variants"
down_revision = "0012_company_stop"


def upgrade() -> None:
    with op.batch_alter_table("campaign_creation_table") as batch_op:
        batch_op.add_column(sa.Column("variants", JSON_DOCUMENT, nullable=True))
    with op.batch_alter_table("email_tracking") as batch_op:
        batch_op.add_column(sa.Column("variant", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("email_tracking") as batch_op:
        batch_op.drop_column("variant")
    with op.batch_alter_table("campaign_creation_table") as batch_op:
        batch_op.drop_column("variants")
