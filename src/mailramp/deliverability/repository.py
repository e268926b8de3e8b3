"""What the deliverability domain needs from storage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mailramp.campaigns.models import Campaign
from mailramp.deliverability.models import Placement, WarmupEmail, WarmupStatus
from mailramp.mailboxes.models import Mailbox, MailboxDay


@dataclass(frozen=True)
class WarmupSent:
    """One warm-up email a mailbox sent, and where the receiving mailbox found it."""

    sent_at: datetime
    placement: Placement | None


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

    async def warmup_sent_since(self, mailbox_id: str, since: datetime) -> list[WarmupSent]:
        """The warm-up emails the mailbox sent from `since` on, with where they landed."""
        ...


class WarmupRepository(Protocol):
    """The warm-up pool's emails, across owners (the pool is the installation's)."""

    async def warmup_pool(self) -> list[Mailbox]:
        """Every linked, active mailbox that takes part in warm-up, whoever owns it."""
        ...

    async def warmup_openings_between(self, mailbox_id: str, start: datetime, end: datetime) -> int:
        """How many conversations the mailbox was planned to open from `start` until before
        `end`."""
        ...

    async def insert_warmup_emails(self, emails: Sequence[WarmupEmail]) -> None:
        """Store new warm-up emails (planned)."""
        ...

    async def claim_warmup_emails(self, now: datetime, *, limit: int) -> list[WarmupEmail]:
        """Take up to `limit` planned warm-up emails due at `now`: each is handed to one
        caller only (it becomes `sending`)."""
        ...

    async def finish_warmup_email(
        self, email_id: str, *, status: WarmupStatus, at: datetime, error: str | None = None
    ) -> None:
        """Record that a claimed warm-up email was sent (`sent_at` = `at`), or failed, or
        goes back to `planned` for another try."""
        ...

    async def warmup_emails_to_find(
        self, mailbox_id: str, *, sent_since: datetime
    ) -> list[WarmupEmail]:
        """The warm-up emails sent to the mailbox from `sent_since` on that it has not
        found yet, oldest first."""
        ...

    async def update_warmup_email(self, email_id: str, changes: Mapping[str, object]) -> None:
        """Change a warm-up email: what the receiving side did with it (where it was found,
        when it was rescued from spam and read, whether a reply was planned), or when it is
        tried again."""
        ...

    async def get_warmup_email(self, email_id: str) -> WarmupEmail | None:
        """One warm-up email by id."""
        ...
