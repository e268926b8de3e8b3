"""The `campaign_creation_table` document and the campaign state machine."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from mailramp.kit.types import CampaignIdStr, ObjectIdStr, Record, UTCDateTime


class CampaignStatus(StrEnum):
    """Where a campaign is in its life (DESIGN.md §4)."""

    SCHEDULED = "scheduled"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


TRANSITIONS: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    CampaignStatus.SCHEDULED: frozenset(
        {CampaignStatus.ACTIVE, CampaignStatus.PAUSED, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.ACTIVE: frozenset(
        {CampaignStatus.COMPLETED, CampaignStatus.PAUSED, CampaignStatus.CANCELLED}
    ),
    # Resuming returns to `scheduled` before start_time and to `active` after it.
    CampaignStatus.PAUSED: frozenset(
        {CampaignStatus.SCHEDULED, CampaignStatus.ACTIVE, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.COMPLETED: frozenset(),
    CampaignStatus.CANCELLED: frozenset(),
}
"""Every legal status change; anything else is refused."""

FINAL_STATUSES = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
RUNNING_STATUSES = frozenset(
    {CampaignStatus.SCHEDULED, CampaignStatus.ACTIVE, CampaignStatus.PAUSED}
)
"""Campaigns that still hold their mailbox: it cannot be unlinked under them."""

MAX_DURATION_HOURS = 24 * 366


class Campaign(Record):
    """A campaign: what to send, from which mailbox, across `[start_time, end_time)`."""

    id: ObjectIdStr = Field(alias="_id")
    campaign_id: CampaignIdStr
    user_id: ObjectIdStr
    mailbox_id: ObjectIdStr
    campaign_name: str
    subject: str
    message: str
    duration: float
    start_time: UTCDateTime
    end_time: UTCDateTime
    status: CampaignStatus = CampaignStatus.SCHEDULED
    total_recipients: int = 0
    created_at: UTCDateTime
    updated_at: UTCDateTime
    created_by: ObjectIdStr
