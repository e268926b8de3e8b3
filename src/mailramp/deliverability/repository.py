"""What the deliverability domain needs from storage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mailramp.campaigns.models import Campaign
from mailramp.mailboxes.models import Mailbox, MailboxDay


@dataclass(frozen=True)
class SentEmail:
    """One campaign email a mailbox sent, and what became of it so far."""

    sent_at: datetime
    bounced: bool
    complained: bool
    replied: bool


class DeliverabilityRepository(Protocol):
    """Histories, across owners (the worker's upkeep), and the sends they are made of."""

    async def linked_mailboxes(self) -> list[Mailbox]:
        """Every linked mailbox, whoever owns it, oldest first."""
        ...

    async def campaign_emails_sent_since(self, mailbox_id: str, since: datetime) -> list[SentEmail]:
        """The campaign emails the mailbox sent from `since` on, with their outcomes."""
        ...

    async def put_mailbox_days(self, days: Sequence[MailboxDay]) -> None:
        """Store each day, replacing the mailbox's row for that day when there is one."""
        ...

    async def sending_campaigns(self) -> list[Campaign]:
        """Every active campaign, whoever owns it."""
        ...
