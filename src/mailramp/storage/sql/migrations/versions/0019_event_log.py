"""The event log as one stream per user: each event gets its number in the user's commit
order (`seq`, handed out by `event_sequences`) and the person's address; events already
recorded are numbered in the order they happened. The log becomes append-only: no foreign
key deletes an email's events with it (written 2026-12-06)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_event_log"
down_revision = "0018_warmup"

BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("email_events") as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("recipient_email", sa.String(length=254), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.text("SELECT _id, user_id FROM email_events ORDER BY user_id, occurred_at, _id")
    ).all()
    numbers: dict[str, int] = {}
    updates = []
    for event_id, user_id in rows:
        numbers[user_id] = numbers.get(user_id, 0) + 1
        updates.append({"event": event_id, "seq": numbers[user_id]})
    for start in range(0, len(updates), BATCH):
        connection.execute(
            sa.text("UPDATE email_events SET seq = :seq WHERE _id = :event"),
            updates[start : start + BATCH],
        )
    connection.execute(
        sa.text(
            "UPDATE email_events SET recipient_email = (SELECT t.recipient_email FROM"
            " email_tracking t WHERE t._id = email_events.record_id)"
        )
    )
    with op.batch_alter_table("email_events") as batch_op:
        batch_op.drop_constraint("fk_email_events_record_id_email_tracking", type_="foreignkey")
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_index("uq_email_events_user_id_seq", ["user_id", "seq"], unique=True)
    op.create_table(
        "event_sequences",
        sa.Column("user_id", sa.String(length=24), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_event_sequences")),
    )
    if numbers:
        op.bulk_insert(
            sa.table(
                "event_sequences",
                sa.column("user_id", sa.String(length=24)),
                sa.column("last_seq", sa.BigInteger()),
            ),
            [{"user_id": user, "last_seq": last} for user, last in numbers.items()],
        )


def downgrade() -> None:
    op.drop_table("event_sequences")
    with op.batch_alter_table("email_events") as batch_op:
        batch_op.create_foreign_key(
            "fk_email_events_record_id_email_tracking",
            "email_tracking",
            ["record_id"],
            ["_id"],
            ondelete="CASCADE",
        )
        batch_op.drop_index("uq_email_events_user_id_seq")
        batch_op.drop_column("recipient_email")
        batch_op.drop_column("seq")
