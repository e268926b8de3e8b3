"""What the conversations domain needs from storage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mailramp.conversations.models import LeadLabel
from mailramp.kit.types import Page
from mailramp.tracking.models import CampaignRecipient, ConversationFile, ConversationMessage


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


@dataclass(frozen=True)
class ThreadQuery:
    """Which threads the inbox lists: with a message whose sender, subject or text, or
    whose person's address or campaign's name contains `search` (any case); of people
    with one lead status; with a message through one mailbox; with unread messages only;
    automatic replies too (else a thread of automatic replies alone is left out); a page."""

    search: str | None = None
    lead_status: str | None = None
    mailbox_id: str | None = None
    unread: bool = False
    automatic: bool = False
    offset: int = 0
    limit: int = 50


@dataclass(frozen=True)
class ThreadSummary:
    """One conversation in the inbox list: the person, their campaign, the latest message
    shown, how many there are and how many are unread."""

    campaign_id: str
    campaign_name: str
    recipient_email: str
    lead_status: str | None
    last_at: datetime
    messages: int
    unread: int
    latest: ConversationMessage


class InboxRepository(Protocol):
    """The conversations kept for the inbox, scoped to their owner."""

    async def list_threads(self, user_id: str, query: ThreadQuery) -> Page[ThreadSummary]:
        """The user's threads `query` selects, the latest message first."""
        ...

    async def list_conversation(
        self, user_id: str, campaign_id: str, recipient_email: str
    ) -> list[ConversationMessage]:
        """Every message kept of one thread, oldest first."""
        ...

    async def get_conversation_message(
        self, user_id: str, message_id: str
    ) -> ConversationMessage | None:
        """One of the user's kept messages."""
        ...

    async def get_conversation_file(
        self, user_id: str, file_id: str
    ) -> tuple[ConversationMessage, ConversationFile] | None:
        """A kept attachment of one of the user's messages, with its message."""
        ...

    async def add_conversation_message(self, message: ConversationMessage) -> bool:
        """Store a message (an answer about to leave); False, storing nothing, if one with
        its id exists (the same answer asked twice)."""
        ...

    async def finish_answer(
        self, answer_id: str, *, status: str, error: str | None, message_id: str | None
    ) -> bool:
        """Move an answer out of `sending` (with the Message-ID it left under); False if it
        was not `sending` any more."""
        ...

    async def mark_conversation_read(
        self, user_id: str, campaign_id: str, recipient_email: str, *, read_at: datetime | None
    ) -> int:
        """Mark every message the person sent in a thread read (at `read_at`) or unread
        (None); how many changed."""
        ...
