"""The unified inbox: every conversation a user's campaigns started, across mailboxes and
campaigns, newest first — the people's replies (their automatic replies on request), kept
by the inbox poller when it recorded them (tracking/inbox.py), with what mailramp sent them.
Read and unread per thread; attachments downloadable, never shown inline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mailramp.campaigns.repository import CampaignRepository
from mailramp.campaigns.service import owned_campaign
from mailramp.conversations.repository import (
    InboxRepository,
    LeadRepository,
    ThreadQuery,
    ThreadSummary,
)
from mailramp.errors import NotFoundError, found
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.types import Page
from mailramp.kit.validation import object_id_arg
from mailramp.sending.repository import SendingRepository
from mailramp.tracking.models import (
    CampaignRecipient,
    ConversationFile,
    ConversationMessage,
    EmailTracking,
)
from mailramp.tracking.service import TrackingService


class InboxStore(InboxRepository, LeadRepository, SendingRepository, CampaignRepository, Protocol):
    """What the inbox reads and writes."""


@dataclass(frozen=True)
class Thread:
    """One conversation: the person (their lead status), the campaign's emails that went to
    them (by step), and every message kept of it, oldest first."""

    campaign_id: str
    campaign_name: str
    person: CampaignRecipient
    sent: list[EmailTracking]
    messages: list[ConversationMessage]


class InboxService:
    """Threads of one user's conversations."""

    def __init__(
        self, store: InboxStore, tracking: TrackingService, *, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._tracking = tracking
        self._clock = clock

    async def threads(self, user_id: str, query: ThreadQuery) -> Page[ThreadSummary]:
        """The user's threads `query` selects, the latest first."""
        owner = object_id_arg(user_id, field="user_id")
        if query.mailbox_id is not None:
            object_id_arg(query.mailbox_id, field="mailbox_id")
        return await self._store.list_threads(owner, query)

    async def thread(
        self, user_id: str, campaign_id: str, record_id: str, *, mark_read: bool = True
    ) -> Thread:
        """The conversation with the person of one of the campaign's emails; opening it
        marks their messages read unless `mark_read` is off."""
        record = await self._tracking.recipient(user_id, campaign_id, record_id)
        campaign = await owned_campaign(self._store, user_id, campaign_id)
        person = await self._store.get_person(
            record.user_id, record.campaign_id, record.recipient_email
        )
        if person is None:
            raise NotFoundError("recipient", record_id)
        if mark_read:
            await self.mark_read(user_id, campaign_id, record_id, read=True)
        emails = await self._store.sequence_emails(record.campaign_id, record.recipient_email)
        messages = await self._store.list_conversation(
            record.user_id, record.campaign_id, record.recipient_email
        )
        return Thread(
            campaign_id=campaign.campaign_id,
            campaign_name=campaign.campaign_name,
            person=person,
            sent=[email for email in emails if email.sent_at is not None],
            messages=messages,
        )

    async def mark_read(self, user_id: str, campaign_id: str, record_id: str, *, read: bool) -> int:
        """Mark the person's messages read, or unread again; how many changed."""
        record = await self._tracking.recipient(user_id, campaign_id, record_id)
        return await self._store.mark_conversation_read(
            record.user_id,
            record.campaign_id,
            record.recipient_email,
            read_at=self._clock() if read else None,
        )

    async def message(self, user_id: str, message_id: str) -> ConversationMessage:
        """One of the user's kept messages (NotFoundError if not theirs)."""
        return found(
            await self._store.get_conversation_message(
                object_id_arg(user_id, field="user_id"),
                object_id_arg(message_id, field="message_id"),
            ),
            "message",
            message_id,
        )

    async def attachment(self, user_id: str, file_id: str) -> tuple[str, str, ConversationFile]:
        """A kept attachment of one of the user's messages: its file name, content type and
        content (NotFoundError if not theirs)."""
        found = await self._store.get_conversation_file(
            object_id_arg(user_id, field="user_id"), object_id_arg(file_id, field="file_id")
        )
        if found is None:
            raise NotFoundError("attachment", file_id)
        message, file = found
        info = next(a for a in message.attachments if a.id == file.id)
        return info.filename, info.content_type, file
