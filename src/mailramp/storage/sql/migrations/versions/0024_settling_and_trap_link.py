"""People or machines, decided when a request settles: the opens and clicks still
settling (`machine_reason = 'settling'`) are found by an index of their own, and a campaign
may carry a trap link (`campaign_creation_table.trap_link`) (written 2026-12-06)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_settling_and_trap_link"
down_revision = "0023_events_for_every_record"

SETTLING = sa.text("machine_reason = 'settling'")


def upgrade() -> None:
    # A plain ADD COLUMN on both backends: SQLite's batch mode would copy the table, and
    # dropping the original cascades to the rows that reference it.
    op.add_column(
        "campaign_creation_table",
        sa.Column("trap_link", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index(
        "ix_email_events_settling",
        "email_events",
        ["occurred_at"],
        sqlite_where=SETTLING,
        postgresql_where=SETTLING,
    )


def downgrade() -> None:
    op.drop_index("ix_email_events_settling", table_name="email_events")
    op.drop_column("campaign_creation_table", "trap_link")  # SQLite 3.35+: no copy either
