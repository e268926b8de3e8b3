"""What the conversations domain needs from storage."""

from __future__ import annotations

from typing import Protocol

from mailramp.conversations.models import LeadLabel
from mailramp.tracking.models import CampaignRecipient


class LeadRepository(Protocol):
    """People's lead statuses and the user's own labels, scoped to their owner."""

    async def get_person(
        self, user_id: str, campaign_id: str, recipient_email: str
    ) -> CampaignRecipient | None:
        """The user's person of this campaign with this (lower-case) address."""
        ...

    async def count_lead_statuses(self, user_id: str, campaign_id: str) -> dict[str, int]:
        """How many of the campaign's people hold each lead status (none left out)."""
        ...

    async def count_lead_status_holders(self, user_id: str, status: str) -> int:
        """How many of the user's people, across campaigns, hold this lead status."""
        ...

    async def add_lead_label(self, label: LeadLabel) -> None:
        """Store a label; DuplicateError (field `name`) if the user has one of its `key`."""
        ...

    async def list_lead_labels(self, user_id: str) -> list[LeadLabel]:
        """The user's labels, by name."""
        ...

    async def delete_lead_label(self, user_id: str, key: str) -> bool:
        """Remove the user's label of this `key`; whether there was one."""
        ...
