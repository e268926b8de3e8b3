"""Legacy migration: fields of an email_campaigns document mailramp has no column for (written
2026-11-25)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import JSON_DOCUMENT

revision = "0006_legacy"
down_revision = "0005_auth"


def upgrade() -> None:
    with op.batch_alter_table("campaign_creation_table", schema=None) as batch_op:
        batch_op.add_column(sa.Column("legacy_fields", JSON_DOCUMENT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaign_creation_table", schema=None) as batch_op:
        batch_op.drop_column("legacy_fields")
