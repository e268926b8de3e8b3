"""What the sending worker, the inbox poller and the mailbox check need from a mailbox's
provider: send a message, read the inbox, get an OAuth token. The adapters live in
`providers/` and are built by the composition root (`runtime.py`); what they raise is drawn
in `errors.py` (`ProviderError`)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from email.message import Message
from typing import Protocol, runtime_checkable

from mailramp.mailboxes.models import Mailbox
from mailramp.mailboxes.service import MailboxCredentials


class TokenSource(Protocol):
    """A mailbox's OAuth access token, refreshed by whoever holds the refresh token."""

    async def access_token(self, *, force_refresh: bool = False) -> str:
        """A current access token; a new one when `force_refresh` (the API refused the last)."""
        ...


class SendingProvider(Protocol):
    """Sends messages from one mailbox; keeps its connection between sends."""

    async def send(self, message: Message, *, sender: str, recipient: str) -> None:
        """Hand one message over for delivery to `recipient`."""
        ...

    async def close(self) -> None:
        """Close any open connection."""
        ...


@runtime_checkable
class ReportsSentMessageId(Protocol):
    """A provider that may send under a Message-ID of its own (Gmail replaces ids it does
    not accept): after a send, `last_message_id` is the provider's id of the message and
    `sent_message_id` reads back the Message-ID it actually used."""

    last_message_id: str | None

    async def sent_message_id(self, provider_id: str) -> str | None:
        """The Message-ID header of the message the provider stored under `provider_id`."""
        ...


class ProviderFactory(Protocol):
    """Builds the SendingProvider for a mailbox from its settings and decrypted credentials."""

    def __call__(self, mailbox: Mailbox, credentials: MailboxCredentials) -> SendingProvider:
        """A provider ready to connect on first send."""
        ...


class TokenSourceFactory(Protocol):
    """Builds the TokenSource of an OAuth mailbox (`oauth.tokens.MailboxTokenSources`)."""

    def __call__(self, mailbox: Mailbox, credentials: MailboxCredentials) -> TokenSource:
        """A token source for the mailbox, refreshing (and storing) its tokens."""
        ...


@dataclass(frozen=True)
class InboxBatch:
    """Messages newer than the position asked for, and the inbox's UIDVALIDITY."""

    uid_validity: int
    messages: list[tuple[int, bytes]]


class Inbox(Protocol):
    """New messages of one mailbox's inbox."""

    async def fetch_new(self, *, uid_validity: int | None, last_uid: int | None) -> InboxBatch:
        """Messages after `last_uid` under `uid_validity`."""
        ...


@dataclass(frozen=True)
class TendedWarmup:
    """A warm-up email the receiving mailbox found: where (`inbox`, `spam` or `other`, and
    the folder's name), and whether it was moved out of spam into the inbox. Each found one
    is marked read (and important where the provider has it)."""

    message_id: str
    placement: str
    folder: str
    rescued: bool


@runtime_checkable
class WarmupInbox(Protocol):
    """A mailbox's folders, as the warm-up pool's receiving side tends them."""

    async def tend_warmup(self, message_ids: Collection[str]) -> list[TendedWarmup]:
        """Look for `message_ids` in every folder: mark each one found read and important,
        and move it to the inbox when it is in spam."""
        ...


class InboxFactory(Protocol):
    """The Inbox of a mailbox."""

    def __call__(self, mailbox: Mailbox, credentials: MailboxCredentials) -> Inbox:
        """An inbox reader for the mailbox."""
        ...
