"""How mail leaves a mailbox: a small Provider protocol and its adapters.

Errors a provider raises say what the engine should do (errors.py draws the rest):

    ProviderError
    ├── TransientSendError     nothing left; try again later (4xx, refused connection)
    │   ├── ThrottledError     the provider said when to try again (`retry_after`)
    │   └── ServerUnavailableError  the server cannot be reached or does not answer:
    │                          nothing more is tried on it until a later pass
    ├── PermanentSendError     the recipient was refused (5xx): a bounce
    ├── UncertainSendError     the connection broke mid-handover: it may have left
    └── MailboxUnusableError   the mailbox itself cannot send (bad credentials, provider
                               not available): stop using it until the user acts
"""

from __future__ import annotations

from datetime import datetime
from email.message import Message
from typing import Protocol, runtime_checkable


class ProviderError(Exception):
    """Base of what providers raise; `smtp_code` when the server gave one."""

    def __init__(self, message: str, *, smtp_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.smtp_code = smtp_code


class TransientSendError(ProviderError):
    """The message did not leave; the same send may succeed later."""


class ThrottledError(TransientSendError):
    """The provider asked for a pause longer than its client waits; `retry_after` in
    seconds: the worker retries the record then, not on its own back-off. `retry_at` is
    the time the provider named, when it named one (Gmail's sending limit)."""

    def __init__(
        self, message: str, *, retry_after: float, retry_at: datetime | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.retry_at = retry_at


class ServerUnavailableError(TransientSendError):
    """The mailbox's server refused or did not take the connection, or stopped answering
    (a timeout) before the message went over: the same would happen to the next message, so
    the worker puts the mailbox's other sends of this pass back instead of waiting on each."""


class PermanentSendError(ProviderError):
    """The recipient (or message) was refused for good: a bounce."""


class UncertainSendError(ProviderError):
    """The message may have been accepted: never retried automatically."""


class MailboxUnusableError(ProviderError):
    """The mailbox cannot send at all until its owner fixes it."""


class TokenSource(Protocol):
    """A mailbox's OAuth access token, refreshed by whoever holds the refresh token."""

    async def access_token(self, *, force_refresh: bool = False) -> str:
        """A current access token; a new one when `force_refresh` (the API refused the last)."""
        ...


class Provider(Protocol):
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
