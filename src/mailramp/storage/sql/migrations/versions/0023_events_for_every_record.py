"""Every counted moment a record holds has its event: the counters are rebuilt from the
event log, so an email whose `sent_at`, `opened_at`, … was written before there was a log
(the layout mailramp upgrades from, `email_tracking` kept as is) gets the event that moment
stands for, at that moment, numbered after the user's existing events and marked
`{"backfilled": "<field>"}` (history: webhooks never push it). A record whose moment
already has an event of a kind that sets it gets nothing. The table of moments is spelled
here, not read from tracking/events.py: a migration does what it did when it was written
(MongoDB's upgrade, mongo-0023, derives the same from the registry) (written 2026-12-06)."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op

from mailramp.kit.ids import new_object_id
from mailramp.storage.sql.migrations.columns import JSON_DOCUMENT

revision = "0023_events_for_every_record"
down_revision = "0022_conversations"

BATCH = 2000
INBOUND = ("reply", "auto_reply", "bounce", "complaint", "delay", "delivered")

# (record field, the event it stands for, whether a person made it, the event types that
# would have set it). People's moments come first: an open by a person is also an open, so
# `opened_at` finds the event `human_opened_at` was given and needs none of its own.
MOMENTS = (
    ("sent_at", "sent", True, ("sent", *INBOUND)),
    ("human_opened_at", "open", True, ("open", "click")),
    ("human_clicked_at", "click", True, ("click",)),
    ("opened_at", "open", False, ("open", "click")),
    ("clicked_at", "click", False, ("click",)),
    ("replied_at", "reply", True, ("reply",)),
    ("auto_replied_at", "auto_reply", True, ("auto_reply",)),
    ("bounced_at", "bounce", True, ("bounce",)),
    ("complained_at", "complaint", True, ("complaint",)),
    ("unsubscribed_at", "unsubscribe", True, ("unsubscribe",)),
)
PEOPLE_ONLY = ("human_opened_at", "human_clicked_at")

INSERT = sa.text(
    "INSERT INTO email_events (_id, seq, record_id, campaign_id, user_id, recipient_email,"
    " type, occurred_at, machine, machine_reason, details) SELECT :id, :seq, t._id,"
    " t.campaign_id, t.user_id, t.recipient_email, :type, t.{field}, :machine, :reason,"
    " :details FROM email_tracking t WHERE t._id = :record"
)


def _missing(
    connection: sa.Connection, field: str, types: tuple[str, ...]
) -> Iterator[tuple[str, str]]:
    """The records with `field` set and no event of `types`, in id order, a batch at a
    time."""
    people = " AND e.machine = false" if field in PEOPLE_ONLY else ""
    # `field` is a name from MOMENTS above, never input.
    query = sa.text(
        f"SELECT t._id, t.user_id FROM email_tracking t WHERE t.{field} IS NOT NULL"  # noqa: S608
        " AND t._id > :after AND NOT EXISTS (SELECT 1 FROM email_events e WHERE"
        f" e.record_id = t._id AND e.type IN :kinds{people}) ORDER BY t._id LIMIT {BATCH}"
    ).bindparams(sa.bindparam("kinds", value=list(types), expanding=True))
    after = ""
    while rows := connection.execute(query, {"after": after}).all():
        yield from ((str(row[0]), str(row[1])) for row in rows)
        after = str(rows[-1][0])


def upgrade() -> None:
    connection = op.get_bind()
    numbers = connection.execute(sa.text("SELECT user_id, last_seq FROM event_sequences"))
    last: dict[str, int] = {str(user): int(seq) for user, seq in numbers.all()}
    known = set(last)
    for field, kind, person, types in MOMENTS:
        statement = INSERT.text.format(field=field)
        insert = sa.text(statement).bindparams(
            sa.bindparam("machine", type_=sa.Boolean()),
            sa.bindparam("details", type_=JSON_DOCUMENT),
        )
        batch = []
        for record_id, user_id in _missing(connection, field, types):
            last[user_id] = last.get(user_id, 0) + 1
            batch.append(
                {
                    "id": new_object_id(),
                    "seq": last[user_id],
                    "type": kind,
                    "machine": not person,
                    "reason": None if person else "unknown: recorded before the event log",
                    "details": {"backfilled": field},
                    "record": record_id,
                }
            )
            if len(batch) == BATCH:
                connection.execute(insert, batch)
                batch = []
        if batch:
            connection.execute(insert, batch)
    for user_id, seq in last.items():
        if user_id in known:
            connection.execute(
                sa.text("UPDATE event_sequences SET last_seq = :seq WHERE user_id = :user"),
                {"seq": seq, "user": user_id},
            )
        else:
            connection.execute(
                sa.text("INSERT INTO event_sequences (user_id, last_seq) VALUES (:user, :seq)"),
                {"seq": seq, "user": user_id},
            )


def downgrade() -> None:
    # The events written here are history like any other: the log is append-only, and
    # the counters rebuilt from it need them.
    pass
