"""The people of a campaign on MongoDB: `campaign_recipients`, the firsts that make the
counters count people rather than emails, and the end of a person's sequence (as
storage/sql/people.py; each write a single-document or a guarded multi-document one)."""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from mailramp.errors import ConflictError, DuplicateError
from mailramp.kit.ids import new_object_id
from mailramp.storage.mongo.codec import (
    CONVERSATION_FILES,
    CONVERSATION_MESSAGES,
    RECIPIENTS,
    TRACKING,
    oid,
    to_document,
)
from mailramp.storage.mongo.event_log import MongoEventLog
from mailramp.tracking.events import ChangedEmail
from mailramp.tracking.models import UNSENT_STATUSES, TrackingStatus
from mailramp.tracking.repository import LeadStatusMove, ReceivedMessage

UNSENT = [status.value for status in UNSENT_STATUSES]


class MongoPeople(MongoEventLog):
    """What the queue and the event log do to people."""

    async def _add_people(
        self, campaign_id: str, user_id: str, emails: Collection[str], at: datetime
    ) -> None:
        """A `campaign_recipients` document for each address that has none."""
        for email in sorted(emails):
            with contextlib.suppress(DuplicateKeyError):  # made meanwhile by another writer
                await self._db[RECIPIENTS].update_one(
                    {"campaign_id": campaign_id, "recipient_email": email},
                    {
                        "$setOnInsert": {
                            "_id": oid(new_object_id()),
                            "user_id": oid(user_id),
                            "created_at": at,
                            "updated_at": at,
                        }
                    },
                    upsert=True,
                )

    async def _first_for_people(
        self,
        campaign_id: str,
        user_id: str,
        emails: Collection[str],
        field: str,
        at: datetime,
    ) -> int:
        """Set `field` on these people where it is not set yet; how many it was set on."""
        await self._add_people(campaign_id, user_id, emails, at)
        changed = await self._db[RECIPIENTS].update_many(
            {"campaign_id": campaign_id, "recipient_email": {"$in": sorted(emails)}, field: None},
            {"$set": {field: at, "updated_at": at}},
        )
        return int(changed.modified_count)

    async def _end_sequence(self, campaign_id: str, email: str, at: datetime) -> list[ChangedEmail]:
        """Stop every email of this person not handed to a worker yet; the emails stopped."""
        stopped = await self._change_emails(
            {"campaign_id": campaign_id, "recipient_email": email, "status": {"$in": UNSENT}},
            {
                "status": TrackingStatus.STOPPED.value,
                "lease_owner": None,
                "lease_expires_at": None,
                "updated_at": at,
            },
        )
        await self._db[RECIPIENTS].update_one(
            {"campaign_id": campaign_id, "recipient_email": email, "stopped_at": None},
            {"$set": {"stopped_at": at, "updated_at": at}},
        )
        return stopped

    async def _postpone(self, campaign_id: str, email: str, until: datetime) -> None:
        """None of this person's emails not sent yet goes before `until`."""
        await self._db[TRACKING].update_many(
            {"campaign_id": campaign_id, "recipient_email": email, "status": {"$in": UNSENT}},
            {"$max": {"scheduled_at": until}},
        )

    async def _move_lead_status(
        self, campaign_id: str, email: str, move: LeadStatusMove, at: datetime
    ) -> None:
        """Set the person's lead status if it is still `move.was`; ConflictError, before
        anything else of the change is written, if it is not."""
        moved = await self._db[RECIPIENTS].update_one(
            {"campaign_id": campaign_id, "recipient_email": email, "lead_status": move.was},
            {"$set": {"lead_status": move.to, "lead_status_at": at, "updated_at": at}},
        )
        if not moved.matched_count:
            raise ConflictError(
                f"the lead status of {email} changed meanwhile; look again", field="status"
            )

    async def _keep_received(self, received: ReceivedMessage) -> None:
        """Keep a reply for the inbox, with its files, unless it was kept before."""
        try:
            await self._insert(CONVERSATION_MESSAGES, received.message)
        except DuplicateError:
            return
        if received.files:
            await self._db[CONVERSATION_FILES].insert_many(
                [to_document(CONVERSATION_FILES, file) for file in received.files]
            )
