"""legacy migration: fields of an email_campaigns document mailramp has no column for

Revision ID: 0006_legacy
Revises: 0005_auth
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_legacy"
down_revision = "0005_auth"
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("campaign_creation_table", schema=None) as batch_op:
        batch_op.add_column(sa.Column("legacy_fields", JSON_DOCUMENT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaign_creation_table", schema=None) as batch_op:
        batch_op.drop_column("legacy_fields")
