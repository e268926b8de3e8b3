"""The sending domain's DNS checks on each mailbox: the DKIM selectors its owner named, the
last verdicts (MX, SPF, DKIM, DMARC, tracking domain), when they were made and what stopped
the last attempt (written 2026-12-06)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailramp.storage.sql.migrations.columns import JSON_DOCUMENT, time_column

revision = "0016_domain_checks"
down_revision = "0015_send_gap"


def upgrade() -> None:
    with op.batch_alter_table("linkbox_box_table") as batch_op:
        batch_op.add_column(sa.Column("dkim_selectors", JSON_DOCUMENT, nullable=True))
        batch_op.add_column(sa.Column("dns_checks", JSON_DOCUMENT, nullable=True))
        batch_op.add_column(time_column("dns_checked_at", nullable=True))
        batch_op.add_column(sa.Column("dns_check_problem", sa.Text(), nullable=True))
    op.create_index("ix_linkbox_box_table_dns_checked_at", "linkbox_box_table", ["dns_checked_at"])


def downgrade() -> None:
    op.drop_index("ix_linkbox_box_table_dns_checked_at", table_name="linkbox_box_table")
    with op.batch_alter_table("linkbox_box_table") as batch_op:
        for column in ("dns_check_problem", "dns_checked_at", "dns_checks", "dkim_selectors"):
            batch_op.drop_column(column)
