"""What the webhooks domain needs from storage, and how it reaches a receiver."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from mailramp.kit.types import Page
from mailramp.webhooks.models import (
    AttemptResult,
    MessageStatus,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
)


@dataclass(frozen=True)
class MessageQuery:
    """Which messages of one endpoint a delivery log shows: of one status (all if None),
    one page."""

    endpoint_id: str
    status: MessageStatus | None = None
    offset: int = 0
    limit: int = 50


class WebhookRepository(Protocol):
    """Endpoints, their queued messages and the attempts, scoped to their owner."""

    async def add_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        """Store a new endpoint."""
        ...

    async def get_webhook_endpoint(self, user_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        """The user's endpoint with this id."""
        ...

    async def list_webhook_endpoints(self, user_id: str) -> list[WebhookEndpoint]:
        """The user's endpoints, oldest first."""
        ...

    async def update_webhook_endpoint(
        self, user_id: str, endpoint_id: str, changes: Mapping[str, Any]
    ) -> WebhookEndpoint | None:
        """Set these fields of the user's endpoint; the endpoint after, or None if missing."""
        ...

    async def delete_webhook_endpoint(self, user_id: str, endpoint_id: str) -> bool:
        """Remove the user's endpoint with its messages and attempts; whether it existed."""
        ...

    async def all_webhook_endpoints(self) -> list[WebhookEndpoint]:
        """Every endpoint, whoever owns it, enabled or not (for key rotation)."""
        ...

    async def replace_webhook_secret(
        self, endpoint_id: str, field: str, *, old: str, new: str
    ) -> bool:
        """Set an endpoint's `secret` or `previous_secret` to `new` if it still is `old`;
        whether it was."""
        ...

    async def enabled_webhook_endpoints(self) -> list[WebhookEndpoint]:
        """Every enabled endpoint, whoever owns it (for the dispatcher)."""
        ...

    async def queue_webhook_messages(
        self,
        endpoint_id: str,
        messages: Sequence[WebhookMessage],
        *,
        cursor_from: int,
        cursor_to: int,
    ) -> bool:
        """Queue messages for an endpoint and move its cursor from `cursor_from` to
        `cursor_to`; False (nothing changed) if the cursor moved meanwhile. A message
        already queued for the same event is not queued twice."""
        ...

    async def resume_webhook_messages(self, endpoint_id: str, *, now: datetime) -> int:
        """Make every pending message of an endpoint due now (it was enabled again); how
        many there are."""
        ...

    async def add_webhook_message(self, message: WebhookMessage) -> None:
        """Store one message outside the event log (a test)."""
        ...

    async def claim_webhook_messages(
        self, *, now: datetime, lease_until: datetime, limit: int
    ) -> list[WebhookMessage]:
        """Lease up to `limit` pending messages of enabled endpoints that are due, not
        leased, and the earliest still pending for their (endpoint, person); oldest due
        first. Another claimer gets none of them until `lease_until`."""
        ...

    async def record_webhook_attempts(self, results: Sequence[AttemptResult]) -> None:
        """In one unit of work, in order: log each attempt, update its message (one attempt
        more, the lease released) and its endpoint as its result says."""
        ...

    async def list_webhook_messages(
        self, user_id: str, query: MessageQuery
    ) -> Page[WebhookMessage]:
        """The messages `query` selects, newest first."""
        ...

    async def get_webhook_message(self, user_id: str, message_id: str) -> WebhookMessage | None:
        """The user's message with this id."""
        ...

    async def list_webhook_attempts(self, user_id: str, message_id: str) -> list[WebhookAttempt]:
        """The attempts at one of the user's messages, oldest first."""
        ...

    async def redeliver_webhook_message(
        self, user_id: str, message_id: str, *, now: datetime
    ) -> WebhookMessage | None:
        """Queue one of the user's messages again, due now, its retry schedule started over;
        None if missing."""
        ...


@dataclass(frozen=True)
class Delivery:
    """What a receiver answered one POST: its status code (None if it never answered),
    why not, and how long it took."""

    status_code: int | None
    error: str | None
    latency_ms: int


class WebhookPoster(Protocol):
    """POSTs a signed body to an endpoint's URL (providers/webhooks.py); never raises for
    what the receiver or the network did — that is the Delivery."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Delivery:
        """Deliver once, without following redirects."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
