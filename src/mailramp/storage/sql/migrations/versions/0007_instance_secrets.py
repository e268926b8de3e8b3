"""Instance secrets: the tracking links' signing keys, stored encrypted (written 2026-11-25)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import time_column

revision = "0007_instance_secrets"
down_revision = "0006_legacy"


def upgrade() -> None:
    op.create_table(
        "instance_secrets",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        time_column("created_at", nullable=False),
        time_column("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instance_secrets")),
    )


def downgrade() -> None:
    op.drop_table("instance_secrets")
