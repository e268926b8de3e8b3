"""What the tracking and sending domains need from storage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mailramp.kit.types import Page
from mailramp.tracking.models import EmailTracking, TrackingStatus


class TrackingRepository(Protocol):
    """`email_tracking` records, scoped to their owner."""

    async def insert_tracking(self, records: Sequence[EmailTracking]) -> int:
        """Store new records in one unit of work; a recipient already in the campaign raises
        DuplicateError naming `recipient_email` and stores none of them."""
        ...

    async def get_tracking(self, user_id: str, tracking_id: str) -> EmailTracking | None:
        """The user's record with this id."""
        ...

    async def list_tracking(
        self,
        user_id: str,
        campaign_id: str,
        *,
        status: TrackingStatus | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[EmailTracking]:
        """A campaign's records in scheduled order."""
        ...

    async def count_tracking_by_status(self, user_id: str, campaign_id: str) -> dict[str, int]:
        """How many of a campaign's records are in each status (statuses with none left out)."""
        ...
