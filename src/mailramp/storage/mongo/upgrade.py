"""What `migrate` does to documents written by an older layout, as the SQL migrations do
to rows; each step is idempotent, so running it on an up-to-date database changes nothing.

mongo-0014 (sequences, as SQL's 0014_sequences): every email without a step is step 1 of
a one-step campaign; the unique index moves from (campaign, recipient) to (campaign,
recipient, step); each recipient gets a `campaign_recipients` document holding what
already happened to their email, so the counters (which count people) go on from there.

mongo-0023 (as SQL's 0023_events_for_every_record): every counted moment a record holds
has its event, since the counters are rebuilt from the event log: a moment written before
there was a log gets the event it stands for, at that moment, numbered after the user's
events and marked `{"backfilled": "<field>"}` (history: webhooks never push it). It runs
when the stored layout is older than mongo-0023 (a scan of every record).

mongo-0024: every campaign_matrix document holds every counter mailramp keeps. A document
in the schema's own layout (the previous application's: 7 counters) lacks the human, auto-
reply and complaint ones; each missing counter is written as 0 (what it counted so far is
unknown; `mailramp metrics recompute` rebuilds them all from the event log).

mongo-0026 (as SQL's 0026_admins_and_audit_log): an instance with users has an admin: when
no user is its first user yet, the earliest one becomes the first user and admin.
"""

from __future__ import annotations

from typing import Any

from mailramp.metrics.models import COUNTERS
from mailramp.storage.mongo.codec import (
    EVENTS,
    METRICS,
    OWED,
    RECIPIENTS,
    TRACKING,
    USERS,
    from_document,
)
from mailramp.storage.mongo.numbering import append_numbered
from mailramp.tracking.events import Moment, backfilled_moments
from mailramp.tracking.models import BACKFILLED, EVENT_TIMESTAMPS, EmailEvent, EmailTracking

OLD_UNIQUE_INDEX = "uq_email_tracking_campaign_id_recipient_email"
BATCH = 500


EVENTS_FOR_EVERY_RECORD = "mongo-0023"


async def upgrade_documents(database: Any, stored: str | None) -> None:
    """Every step below, in order; `stored` is the layout the database was at (None for
    a database never migrated)."""
    await _emails_have_steps(database)
    # Layout names sort in their order ("mongo-0014" < "mongo-0023").
    if stored is None or stored < EVENTS_FOR_EVERY_RECORD:
        await events_for_every_record(database, {})
    await metrics_have_every_counter(database)
    await an_admin_for_every_instance(database)


async def an_admin_for_every_instance(database: Any) -> bool:
    """Make the earliest user the first user and admin when none is; whether one was made
    (idempotent: False once there is a first user, or no user at all)."""
    if await database[USERS].find_one({"first_user": True}) is not None:
        return False
    earliest = None
    async for document in database[USERS].find({}).sort([("created_at", 1), ("_id", 1)]).limit(1):
        earliest = document
    if earliest is None:
        return False
    await database[USERS].update_one(
        {"_id": earliest["_id"]}, {"$set": {"is_admin": True, "first_user": True}}
    )
    return True


async def metrics_have_every_counter(database: Any) -> int:
    """Write 0 for each counter a campaign_matrix document lacks; how many documents
    changed (idempotent: 0 on an up-to-date database)."""
    changed = 0
    for name in COUNTERS:
        result = await database[METRICS].update_many(
            {name: {"$exists": False}}, {"$set": {name: 0}}
        )
        changed += int(result.modified_count)
    return changed


async def _emails_have_steps(database: Any) -> None:
    tracking = database[TRACKING]
    if OLD_UNIQUE_INDEX in await tracking.index_information():
        await tracking.drop_index(OLD_UNIQUE_INDEX)
    unstepped = {"step": {"$exists": False}}
    cursor = tracking.find(unstepped, {"campaign_id": 1, "user_id": 1, "recipient_email": 1,
                                       "created_at": 1, "updated_at": 1,
                                       **dict.fromkeys(EVENT_TIMESTAMPS, 1)})  # fmt: skip
    async for email in cursor:
        person = {"campaign_id": email["campaign_id"], "recipient_email": email["recipient_email"]}
        firsts = {name: email.get(name) for name in EVENT_TIMESTAMPS}
        await database[RECIPIENTS].update_one(
            person,
            {
                "$setOnInsert": {
                    "_id": email["_id"],
                    "user_id": email["user_id"],
                    "created_at": email.get("created_at"),
                    "updated_at": email.get("updated_at"),
                    **firsts,
                }
            },
            upsert=True,
        )
        await tracking.update_one({"_id": email["_id"], **unstepped}, {"$set": {"step": 1}})


async def events_for_every_record(database: Any, records: dict[str, Any]) -> int:
    """Give each counted moment of the records `records` selects that has no event the
    event it stands for (marked `backfilled`); how many were written. The upgrade runs it
    on every record; recomputing a campaign's counters runs it on the campaign's first,
    since without transactions a crash between an outcome's record write and its event
    can leave a moment without one. A batch of records at a time: one query for which of
    them have such an event, one append for the rest."""
    written = 0
    for moment in backfilled_moments():
        wanted: dict[str, Any] = {"type": {"$in": [kind.value for kind in moment.types]}}
        if moment.people_only:
            wanted["machine"] = False
        # A record still owing its outcome's consequences gets its events from their
        # completion (storage/mongo/queue.py), not from here: both would be logged.
        owing = {OWED: {"$exists": False}}
        cursor = database[TRACKING].find({**records, moment.field: {"$ne": None}, **owing})
        batch: list[dict[str, Any]] = []
        async for document in cursor:
            batch.append(document)
            if len(batch) == BATCH:
                written += await _backfill(database, moment, wanted, batch)
                batch = []
        written += await _backfill(database, moment, wanted, batch)
    return written


async def _backfill(
    database: Any, moment: Moment, wanted: dict[str, Any], documents: list[dict[str, Any]]
) -> int:
    if not documents:
        return 0
    ids = [document["_id"] for document in documents]
    covered = set(
        await database[EVENTS].distinct("record_id", {"record_id": {"$in": ids}, **wanted})
    )
    machine = "unknown: recorded before the event log" if moment.machine else None
    events = []
    for document in documents:
        record = from_document(EmailTracking, document)
        at = getattr(record, moment.field, None) if record else None
        if document["_id"] in covered or record is None or at is None:
            continue
        details = {BACKFILLED: moment.field}
        events.append(EmailEvent.about(record, moment.kind, at, details=details, machine=machine))
    return len(await append_numbered(database, events))
