"""What the mailboxes domain needs from storage."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from datetime import datetime
from typing import Any, Protocol

from mailramp.mailboxes.models import Mailbox, MailboxDay


class MailboxRepository(Protocol):
    """Mailboxes, always scoped to their owner.

    Invariant kept by every write here: a user with at least one linked mailbox has exactly
    one primary among them (the first linked becomes primary; unlinking the primary promotes
    the oldest remaining one).
    """

    async def insert_mailbox(self, mailbox: Mailbox) -> Mailbox:
        """Store a new mailbox; `is_primary` is decided here. Duplicate (user, email) raises."""
        ...

    async def get_mailbox(self, user_id: str, mailbox_id: str) -> Mailbox | None:
        """The user's mailbox with this id, linked or not."""
        ...

    async def get_mailbox_unscoped(self, mailbox_id: str) -> Mailbox | None:
        """A mailbox whoever owns it (the worker)."""
        ...

    async def tracking_domain_in_use(self, domain: str) -> bool:
        """Whether a linked mailbox, whoever owns it, uses `domain` as its verified tracking
        domain (for the reverse proxy's question before it gets a certificate)."""
        ...

    async def mailboxes_due_dns_check(self, before: datetime, *, limit: int) -> list[Mailbox]:
        """Linked mailboxes, whoever owns them, whose domain was never checked in DNS or last
        checked before `before` — never checked first, then oldest check first."""
        ...

    async def mailbox_days(self, mailbox_id: str, *, since: str | None = None) -> list[MailboxDay]:
        """The mailbox's day-by-day history (from the UTC day `since`, `YYYY-MM-DD`, when
        given), oldest first."""
        ...

    async def get_mailbox_by_email(self, user_id: str, email: str) -> Mailbox | None:
        """The user's mailbox with this address, linked or not."""
        ...

    async def linked_mailboxes_with_email(self, email: str) -> list[Mailbox]:
        """Every linked mailbox with this address, whoever owns it, oldest first (for
        operator tools such as `mailramp migrate-legacy`)."""
        ...

    async def list_mailboxes(
        self, user_id: str, *, include_unlinked: bool = False
    ) -> list[Mailbox]:
        """The user's mailboxes, primary first, then oldest first."""
        ...

    async def update_mailbox(
        self, user_id: str, mailbox_id: str, changes: Mapping[str, Any]
    ) -> Mailbox | None:
        """Apply `changes`, restore the primary invariant, return the mailbox (None if missing)."""
        ...

    async def set_primary_mailbox(self, user_id: str, mailbox_id: str) -> Mailbox | None:
        """Make this linked mailbox the user's only primary, atomically."""
        ...

    def iter_mailbox_secrets(self) -> AsyncGenerator[tuple[str, str, str], None]:
        """Every stored secret of every user as (mailbox_id, field, ciphertext) — for key
        checks and rotation only, never for serving a request."""
        ...

    async def replace_mailbox_secret(
        self, mailbox_id: str, field: str, *, old: str, new: str
    ) -> bool:
        """Swap one ciphertext for another if it is still `old` (rotation's compare-and-set)."""
        ...

    async def list_inbox_mailboxes(self) -> list[Mailbox]:
        """Every linked, active mailbox with an IMAP inbox, and every linked, active
        Outlook or Gmail mailbox (read through Graph or the Gmail API) — for the inbox
        poller only."""
        ...

    async def claim_inbox_check(self, mailbox_id: str, *, now: datetime, interval: float) -> bool:
        """Take the mailbox's next inbox check if none happened in the last `interval`
        seconds (compare-and-set, so two workers never check one inbox at once)."""
        ...

    async def save_inbox_position(
        self, mailbox_id: str, *, uid_validity: int, last_uid: int
    ) -> None:
        """Remember how far the inbox has been read."""
        ...
