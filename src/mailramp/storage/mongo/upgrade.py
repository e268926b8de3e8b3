"""What `migrate` does to documents written by an older layout, as the SQL migrations do
to rows; each step is idempotent, so running it on an up-to-date database changes nothing.

mongo-0014 (sequences, as SQL's 0014_sequences): every email without a step is step 1 of
a one-step campaign; the unique index moves from (campaign, recipient) to (campaign,
recipient, step); each recipient gets a `campaign_recipients` document holding what
already happened to their email, so the counters (which count people) go on from there.
"""

from __future__ import annotations

from typing import Any

from mailramp.storage.mongo.codec import RECIPIENTS, TRACKING
from mailramp.tracking.models import EVENT_TIMESTAMPS

OLD_UNIQUE_INDEX = "uq_email_tracking_campaign_id_recipient_email"


async def upgrade_documents(database: Any) -> None:
    """Every step below, in order."""
    await _emails_have_steps(database)


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
