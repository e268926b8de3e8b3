"""How mail leaves a mailbox: a small Provider protocol and its adapters.

Errors a provider raises say what the engine should do (errors.py draws the rest):

    ProviderError
    ├── TransientSendError     nothing left; try again later (4xx, refused connection)
    ├── PermanentSendError     the recipient was refused (5xx): a bounce
    ├── UncertainSendError     the connection broke mid-handover: it may have left
    └── MailboxUnusableError   the mailbox itself cannot send (bad credentials, provider
                               not available): stop using it until the user acts
"""

from __future__ import annotations

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
    seconds: the worker retries the record then, not on its own back-off."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
