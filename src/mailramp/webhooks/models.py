"""Webhook endpoints, the messages queued for them and each delivery attempt, and the rules
they follow: which events an endpoint takes, when a failed message is tried again, when an
endpoint is disabled, what a batch of attempts does to its endpoints' health."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import Field

from mailramp.kit.clock import truncate
from mailramp.kit.secrets import secret_context
from mailramp.kit.types import ObjectIdStr, Record, UTCDateTime

RETRY_DELAYS: Sequence[timedelta] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
"""After a failed attempt n (1, 2, …), the next comes RETRY_DELAYS[n - 1] later (the Standard
Webhooks schedule); a message whose last retry fails is `failed`."""

JITTER = 0.1
"""Each delay is stretched or shrunk by up to this share at random, so the retries of many
messages that failed together do not all land on the receiver at the same second."""

DISABLE_AFTER = timedelta(days=5)
"""An endpoint every delivery has failed to for this long is disabled (with a notice)."""

ATTEMPT_TIMEOUT_SECONDS = 15.0
"""How long one delivery may take, connecting included."""

SECRET_OVERLAP = timedelta(hours=24)
"""After a secret is rotated, messages are signed with the previous one too for this long,
so a receiver can switch over without dropping any."""


def next_attempt(after: int, now: datetime, *, rng: random.Random | None = None) -> datetime | None:
    """When to try again after the `after`th attempt failed; None when none is left."""
    if after > len(RETRY_DELAYS):
        return None
    delay = RETRY_DELAYS[after - 1]
    share = (rng or random).uniform(-JITTER, JITTER)
    return truncate(now + delay * (1 + share))  # stored to the millisecond everywhere


class MessageStatus(StrEnum):
    """Where one message to one endpoint is."""

    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # every retry failed, or the endpoint said 410 Gone


class WebhookEndpoint(Record):
    """A URL of the user's that receives their events. `kinds` lists the event types it
    takes (every type if empty). `cursor` is the number of the last event of the user's log
    already queued for it; `secret` (and `previous_secret`) are encrypted at rest, never
    shown after they are made."""

    id: ObjectIdStr = Field(alias="_id")
    user_id: ObjectIdStr
    url: str
    kinds: list[str] = Field(default_factory=list)
    description: str = ""
    secret: str
    previous_secret: str | None = None
    previous_secret_until: UTCDateTime | None = None
    enabled: bool = True
    disabled_reason: str | None = None
    disabled_at: UTCDateTime | None = None
    cursor: int = 0
    failing_since: UTCDateTime | None = None
    last_success_at: UTCDateTime | None = None
    created_at: UTCDateTime
    updated_at: UTCDateTime

    def wants(self, kind: str) -> bool:
        """Whether events of this type go to this endpoint."""
        return not self.kinds or kind in self.kinds


class WebhookMessage(Record):
    """One event queued for one endpoint. `person` orders delivery: a message waits while an
    earlier one for the same person (campaign and address) is still pending. `payload` is
    the JSON body, fixed when queued (a redelivery sends the same bytes); `id` is the
    `webhook-id` a receiver drops duplicates by (the event's id: the same event has the same
    id at every endpoint)."""

    id: ObjectIdStr = Field(alias="_id")
    endpoint_id: ObjectIdStr
    user_id: ObjectIdStr
    seq: int | None
    """The event's number in the user's log (None for a test message)."""
    event_id: ObjectIdStr
    person: str
    type: str
    payload: str
    status: MessageStatus = MessageStatus.PENDING
    attempts: int = 0
    next_attempt_at: UTCDateTime | None = None
    lease_until: UTCDateTime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: UTCDateTime | None = None
    created_at: UTCDateTime
    updated_at: UTCDateTime


class WebhookAttempt(Record):
    """One try to deliver a message: what the endpoint answered (or why nothing did) and how
    long it took."""

    id: ObjectIdStr = Field(alias="_id")
    message_id: ObjectIdStr
    endpoint_id: ObjectIdStr
    user_id: ObjectIdStr
    attempted_at: UTCDateTime
    status_code: int | None = None
    latency_ms: int
    error: str | None = None
    manual: bool = False
    """A test or a redelivery the user asked for."""


def secret_field(endpoint_id: str, field: str) -> str:
    """What an endpoint's encrypted `secret` or `previous_secret` is bound to."""
    return secret_context("webhook_endpoints", endpoint_id, field)


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt changes: the attempt logged, the message's new status (and when it
    is tried next, if pending), and the endpoint's health — `succeeded` clears its failing
    streak, anything else starts one if none runs; `disable` (a reason) disables it."""

    attempt: WebhookAttempt
    status: MessageStatus
    next_attempt_at: datetime | None
    succeeded: bool
    disable: str | None = None


def endpoint_changes(results: Sequence[AttemptResult]) -> dict[str, dict[str, Any]]:
    """What a batch of attempts, in order, sets on each endpoint: a success clears the
    failing streak (`failing_since` None); a failure after it starts one at its time; with
    no success in the batch, a failure starts one only if none runs (the store keeps the
    running one: `last_success_at` absent says so); a `disable` turns the endpoint off."""
    changes: dict[str, dict[str, Any]] = {}
    for result in results:
        endpoint = changes.setdefault(result.attempt.endpoint_id, {})
        at = result.attempt.attempted_at
        if result.succeeded:
            endpoint |= {"last_success_at": at, "failing_since": None}
        elif endpoint.get("failing_since") is None:
            endpoint["failing_since"] = at
        if result.disable is not None:
            endpoint |= {"enabled": False, "disabled_reason": result.disable, "disabled_at": at}
    return changes
