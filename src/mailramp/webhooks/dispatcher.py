"""The webhook dispatcher a worker runs: it queues each new event of a user's log for every
enabled endpoint that wants it (moving the endpoint's cursor in the same unit of work), then
delivers what is due — at least once, in order per person, each endpoint on its own so a
slow or dead one costs nothing but its own queue.

A message that fails is tried again on the Standard Webhooks schedule (models.RETRY_DELAYS,
with jitter); its person's later messages wait for it. A 410 Gone disables the endpoint at
once; an endpoint every delivery failed to for DISABLE_AFTER is disabled with a notice.
Nothing queued is dropped: a disabled endpoint keeps its queue and its cursor, and takes
up where it stopped when its owner enables it again."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.ids import new_object_id
from mailramp.kit.secrets import SecretBox
from mailramp.tracking.models import EmailEvent
from mailramp.tracking.repository import TrackingRepository
from mailramp.tracking.service import MAX_EVENT_PAGE, TrackingService
from mailramp.webhooks.models import (
    ATTEMPT_TIMEOUT_SECONDS,
    DISABLE_AFTER,
    AttemptResult,
    MessageStatus,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    next_attempt,
    secret_field,
)
from mailramp.webhooks.repository import WebhookPoster, WebhookRepository
from mailramp.webhooks.signing import signed_headers

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=ATTEMPT_TIMEOUT_SECONDS * 4)
"""How long a claimed message is another worker's: longer than its attempt can take."""


class DispatcherStore(WebhookRepository, TrackingRepository, Protocol):
    """What the dispatcher reads and writes."""


class WebhookDispatcher:
    """Queues new events for endpoints and delivers them (`run_once`, every second).
    `clock` schedules; `wall_clock` stamps `webhook-timestamp`, which receivers check
    against their own clocks."""

    def __init__(
        self,
        store: DispatcherStore,
        tracking: TrackingService,
        secrets: SecretBox,
        poster: Callable[[], WebhookPoster],
        *,
        clock: Clock = utc_now,
        wall_clock: Clock = utc_now,
        batch: int = 200,
        per_endpoint: int = 4,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._tracking = tracking
        self._secrets = secrets
        self._poster_factory = poster
        self._poster: WebhookPoster | None = None
        self._clock = clock
        self._wall = wall_clock
        self._batch = batch
        self._per_endpoint = per_endpoint
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)

    async def log_end(self, user_id: str) -> int:
        """The number of the user's newest event (a new endpoint starts after it)."""
        return await self._store.last_event_seq(user_id)

    async def run_once(self, *, seconds: float = 30.0) -> int:
        """Queue what is new, then deliver what is due until nothing is or `seconds` passed;
        how many attempts were made."""
        deadline = time.monotonic() + seconds
        attempts = 0
        while True:
            await self.fan_out()
            made = await self.deliver_due()
            attempts += made
            # A person's next message is due once the one before it is delivered: go on
            # while anything was.
            if not made or time.monotonic() > deadline:
                return attempts

    async def close(self) -> None:
        if self._poster is not None:
            await self._poster.close()
            self._poster = None

    async def fan_out(self) -> int:
        """Queue each enabled endpoint's new events; how many messages were queued."""
        queued = 0
        for endpoint in await self._store.enabled_webhook_endpoints():
            events = await self._tracking.event_log(
                endpoint.user_id, after=endpoint.cursor, limit=MAX_EVENT_PAGE
            )
            if not events or events[-1].seq is None:
                continue
            now = self._clock()
            messages = [
                _message(endpoint, e, now)
                for e in events
                if endpoint.wants(e.type) and not e.backfilled
            ]
            if await self._store.queue_webhook_messages(
                endpoint.id, messages, cursor_from=endpoint.cursor, cursor_to=events[-1].seq
            ):
                queued += len(messages)
        return queued

    async def deliver_due(self) -> int:
        """Deliver a batch of due messages, each endpoint's at most `per_endpoint` at once;
        how many attempts were made."""
        now = self._clock()
        claimed = await self._store.claim_webhook_messages(
            now=now, lease_until=now + LEASE, limit=self._batch
        )
        if not claimed:
            return 0
        endpoints = {e.id: e for e in await self._store.enabled_webhook_endpoints()}
        by_endpoint: dict[str, list[WebhookMessage]] = defaultdict(list)
        for message in claimed:
            by_endpoint[message.endpoint_id].append(message)
        batches = await asyncio.gather(
            *(
                self._deliver_all(endpoints[endpoint_id], messages)
                for endpoint_id, messages in by_endpoint.items()
                if endpoint_id in endpoints
            )
        )
        # One unit of work for the whole batch: the store's writer is shared with sending.
        # A crash before it leaves the messages leased; they go again when the lease ends.
        await self._store.record_webhook_attempts([r for batch in batches for r in batch])
        return len(claimed)

    async def _deliver_all(
        self, endpoint: WebhookEndpoint, messages: list[WebhookMessage]
    ) -> list[AttemptResult]:
        gate = asyncio.Semaphore(self._per_endpoint)

        async def one(message: WebhookMessage) -> AttemptResult:
            async with gate:
                return await self._try(endpoint, message)

        results = await asyncio.gather(*(one(message) for message in messages))
        return sorted(results, key=lambda result: result.attempt.attempted_at)

    async def attempt(
        self, endpoint: WebhookEndpoint, message: WebhookMessage, *, manual: bool = False
    ) -> WebhookAttempt:
        """Deliver one message once and record what happened (and what it means for the
        message and the endpoint)."""
        result = await self._try(endpoint, message, manual=manual)
        await self._store.record_webhook_attempts([result])
        return result.attempt

    async def _try(
        self, endpoint: WebhookEndpoint, message: WebhookMessage, *, manual: bool = False
    ) -> AttemptResult:
        """POST one message, signed with the endpoint's secret(s); what the answer means."""
        at = self._clock()
        # The receiver holds `webhook-timestamp` against its own clock: the real one.
        keys = self._keys(endpoint, at)
        headers = signed_headers(keys, message.event_id, self._wall(), message.payload)
        delivery = await self._poster_now().post(endpoint.url, message.payload.encode(), headers)
        attempt = WebhookAttempt(
            id=new_object_id(),
            message_id=message.id,
            endpoint_id=endpoint.id,
            user_id=endpoint.user_id,
            attempted_at=at,
            status_code=delivery.status_code,
            latency_ms=delivery.latency_ms,
            error=delivery.error,
            manual=manual,
        )
        return self._judge(endpoint, message, attempt)

    def _judge(
        self, endpoint: WebhookEndpoint, message: WebhookMessage, attempt: WebhookAttempt
    ) -> AttemptResult:
        """What an attempt means: 2xx delivered; 410 Gone failed, and the endpoint disabled;
        anything else tried again later, until the schedule runs out."""
        at, code = attempt.attempted_at, attempt.status_code
        if code is not None and 200 <= code < 300:
            return AttemptResult(attempt, MessageStatus.DELIVERED, None, succeeded=True)
        if code == 410:
            reason = "the endpoint answered 410 Gone: it no longer wants these messages"
            log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)
            return AttemptResult(attempt, MessageStatus.FAILED, None, False, disable=reason)
        retry = next_attempt(message.attempts + 1, at, rng=self._rng)
        status = MessageStatus.PENDING if retry is not None else MessageStatus.FAILED
        if message.seq is None:  # a test: tried once
            status, retry = MessageStatus.FAILED, None
        disable = None
        failing_since = endpoint.failing_since or at
        if at - failing_since >= DISABLE_AFTER:
            disable = (
                f"every delivery failed since {failing_since:%Y-%m-%d %H:%M} UTC "
                f"(the last: {attempt.error or f'HTTP {code}'})"
            )
            log.warning("webhook endpoint %s disabled: %s", endpoint.id, disable)
        return AttemptResult(attempt, status, retry, succeeded=False, disable=disable)

    def _keys(self, endpoint: WebhookEndpoint, at: datetime) -> list[str]:
        """The secrets to sign with: the endpoint's, and the previous one while it lasts."""
        keys = [self._secrets.decrypt(endpoint.secret, context=secret_field(endpoint.id, "secret"))]
        if (
            endpoint.previous_secret
            and endpoint.previous_secret_until
            and at < endpoint.previous_secret_until
        ):
            context = secret_field(endpoint.id, "previous_secret")
            keys.append(self._secrets.decrypt(endpoint.previous_secret, context=context))
        return keys

    def _poster_now(self) -> WebhookPoster:
        if self._poster is None:
            self._poster = self._poster_factory()
        return self._poster


def _message(endpoint: WebhookEndpoint, event: EmailEvent, now: datetime) -> WebhookMessage:
    """The message an event makes for an endpoint: the event as the API shows it."""
    payload = {
        "type": event.type.value,
        "timestamp": event.occurred_at.isoformat(),
        "data": event.model_dump(mode="json", by_alias=True),
    }
    return WebhookMessage(
        id=new_object_id(),
        endpoint_id=endpoint.id,
        user_id=endpoint.user_id,
        seq=event.seq,
        event_id=event.id,
        person=f"{event.campaign_id}/{event.recipient_email or event.record_id}",
        type=event.type.value,
        payload=json.dumps(payload, separators=(",", ":"), sort_keys=True),
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
