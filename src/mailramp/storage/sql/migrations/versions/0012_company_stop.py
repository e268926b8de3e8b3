"""A campaign option: one person's reply stops their colleagues (written 2026-12-05)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_company_stop"
down_revision = "0011_campaign_mailboxes"


def upgrade() -> None:
    with op.batch_alter_table("campaign_creation_table") as batch_op:
        batch_op.add_column(
            sa.Column(
                "stop_company_on_reply",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("campaign_creation_table") as batch_op:
        batch_op.drop_column("stop_company_on_reply")
