"""Campaigns on MongoDB, always scoped to their owner (the worker's lookup says so)."""

from __future__ import annotations

import contextlib
from collections.abc import (
    Mapping,
)
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from mailramp.campaigns.models import Campaign
from mailramp.campaigns.repository import CampaignQuery
from mailramp.errors import DatabaseUnavailableError, DuplicateError
from mailramp.kit.types import Page
from mailramp.metrics.models import CampaignMetrics
from mailramp.storage.mongo.base import MongoBase
from mailramp.storage.mongo.codec import (
    CAMPAIGNS,
    METRICS,
    encode,
    from_document,
    oid,
    to_document,
)


class MongoCampaigns(MongoBase):
    """CampaignRepository on MongoDB."""

    async def insert_campaign(self, campaign: Campaign, metrics: CampaignMetrics) -> Campaign:
        """Two documents without a transaction, written in this order:

        1. the `campaign_matrix` document; if refused, nothing was written;
        2. the campaign; if refused (duplicate key), the metrics document of step 1 is
           deleted again; on any other failure it is deleted only once the campaign is
           known not to be there (the write may have been applied before a connection
           dropped).

        A crash between 1 and 2 leaves at most a metrics document whose campaign never
        existed: invisible, since readers reach metrics through a campaign_id only a stored
        campaign hands out. So a campaign is never visible without its metrics."""
        metrics_document = to_document(METRICS, metrics)
        try:
            await self._db[METRICS].insert_one(metrics_document)
        except DuplicateKeyError as error:
            refused = await self._duplicate(METRICS, metrics_document, error)
            if isinstance(refused, DuplicateError) and refused.field == "campaign_id":
                # As on SQL, which inserts the campaign first: the campaign_id is taken.
                refused = DuplicateError("campaign_id", campaign.campaign_id, kind="campaign")
            raise refused from None
        campaign_document = to_document(CAMPAIGNS, campaign)
        try:
            await self._db[CAMPAIGNS].insert_one(campaign_document)
        except DuplicateKeyError as error:
            await self._db[METRICS].delete_one({"_id": metrics_document["_id"]})
            raise await self._duplicate(CAMPAIGNS, campaign_document, error) from None
        except BaseException:
            with contextlib.suppress(PyMongoError, DatabaseUnavailableError):
                stored = await self._db[CAMPAIGNS].find_one(
                    {"_id": campaign_document["_id"]}, {"_id": 1}
                )
                if stored is None:
                    await self._db[METRICS].delete_one({"_id": metrics_document["_id"]})
            raise
        return campaign

    def _campaign_of(self, user_id: str, campaign_id: str) -> dict[str, Any]:
        return {"campaign_id": campaign_id, "user_id": oid(user_id)}

    async def get_campaign(self, user_id: str, campaign_id: str) -> Campaign | None:
        return await self._find_one(CAMPAIGNS, Campaign, self._campaign_of(user_id, campaign_id))

    async def get_campaign_unscoped(self, campaign_id: str) -> Campaign | None:
        return await self._find_one(CAMPAIGNS, Campaign, {"campaign_id": campaign_id})

    async def list_campaigns(self, user_id: str, query: CampaignQuery) -> Page[Campaign]:
        found: dict[str, Any] = {"user_id": oid(user_id)}
        if query.statuses is not None:
            found["status"] = {"$in": [str(status) for status in query.statuses]}
        if query.mailbox_id is not None:
            mailbox = oid(query.mailbox_id)
            found["$or"] = [{"mailbox_id": mailbox}, {"mailbox_ids": mailbox}]
        order = [("created_at", -1), ("_id", -1)]
        return await self._page(CAMPAIGNS, Campaign, found, order, query.offset, query.limit)

    async def update_campaign(self, read: Campaign, changes: Mapping[str, Any]) -> Campaign | None:
        user_id, campaign_id, expected_status = read.user_id, read.campaign_id, read.status
        values = encode(CAMPAIGNS, changes)
        query = self._campaign_of(user_id, campaign_id)
        # Compare-and-set on the status in one single-document update.
        update: dict[str, Any] = {"$set": values} if values else {"$set": {}}
        try:
            if values:
                document = await self._db[CAMPAIGNS].find_one_and_update(
                    query | {"status": expected_status.value},
                    update,
                    return_document=ReturnDocument.AFTER,
                )
            else:
                document = await self._db[CAMPAIGNS].find_one(
                    query | {"status": expected_status.value}
                )
        except DuplicateKeyError as error:
            raise await self._duplicate(CAMPAIGNS, query | values, error) from None
        if document is None:
            return None
        if "mailbox_id" in values:
            # The metrics document follows its campaign's mailbox; a crash before this
            # write leaves it naming the old one until the next edit (metrics are read by
            # campaign_id, never by mailbox, in the services).
            await self._db[METRICS].update_one(
                {"campaign_id": campaign_id}, {"$set": {"mailbox_id": values["mailbox_id"]}}
            )
        return from_document(Campaign, document)
