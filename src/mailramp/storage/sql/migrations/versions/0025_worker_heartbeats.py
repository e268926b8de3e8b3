"""Which sending workers run: the last heartbeat of each (`worker_heartbeats`: who, where,
which version, since when, its last pass, the records it holds) (written 2026-12-06)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import time_column

revision = "0025_worker_heartbeats"
down_revision = "0024_settling_and_trap_link"


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sa.String(200), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("lease_seconds", sa.Float(), nullable=False),
        time_column("started_at", nullable=False),
        time_column("beat_at", nullable=False),
        time_column("last_pass_at", nullable=True),
        sa.Column("held", sa.Integer(), nullable=False),
        time_column("stopped_at", nullable=True),
        sa.PrimaryKeyConstraint("worker_id", name="pk_worker_heartbeats"),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
