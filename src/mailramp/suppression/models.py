"""A suppressed address."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from mailramp.kit.types import ObjectIdStr, Record, UTCDateTime


class SuppressionReason(StrEnum):
    """Why an address is suppressed."""

    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"  # reported a message as spam
    MANUAL = "manual"


class Suppression(Record):
    """An address one user's campaigns never send to again."""

    id: ObjectIdStr = Field(alias="_id")
    user_id: ObjectIdStr
    email: str
    reason: SuppressionReason
    campaign_id: str | None = None
    detail: str | None = None
    created_at: UTCDateTime
