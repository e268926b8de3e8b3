"""A user's webhook endpoints: adding one (its secret shown once), changing, rotating the
secret, testing, the delivery log and redelivering a message."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from mailramp.errors import HostError, ValidationError, found
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.ids import new_object_id
from mailramp.kit.network import resolve_host
from mailramp.kit.secrets import SecretBox
from mailramp.kit.types import Page
from mailramp.kit.validation import object_id_arg
from mailramp.tracking.models import EventType
from mailramp.webhooks.dispatcher import WebhookDispatcher
from mailramp.webhooks.models import (
    SECRET_OVERLAP,
    MessageStatus,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    secret_field,
)
from mailramp.webhooks.repository import MessageQuery, WebhookRepository
from mailramp.webhooks.signing import new_secret

URL_MAX = 2000
TEST_TYPE = "webhook.test"
"""The type of the message `send_test` sends: no event of the log has it."""


class WebhookStore(WebhookRepository, Protocol):
    """What the webhook service reads and writes."""


class WebhookService:
    """Endpoints and their delivery logs, scoped to their owner."""

    def __init__(
        self,
        store: WebhookStore,
        secrets: SecretBox,
        dispatcher: WebhookDispatcher,
        *,
        clock: Clock = utc_now,
        allow_private_hosts: bool = False,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._dispatcher = dispatcher
        self._clock = clock
        self._allow_private = allow_private_hosts

    async def add_endpoint(
        self, user_id: str, url: str, *, kinds: Sequence[str] = (), description: str = ""
    ) -> tuple[WebhookEndpoint, str]:
        """A new endpoint that receives the user's events from now on (of `kinds`, or all),
        and its signing secret — shown this once, stored encrypted."""
        owner = object_id_arg(user_id, field="user_id")
        checked = await self._url(url)
        now = self._clock()
        endpoint_id = new_object_id()
        secret = new_secret()
        endpoint = WebhookEndpoint(
            id=endpoint_id,
            user_id=owner,
            url=checked,
            kinds=_kinds(kinds),
            description=description.strip()[:200],
            secret=self._secrets.encrypt(secret, context=secret_field(endpoint_id, "secret")),
            cursor=await self._dispatcher.log_end(owner),
            created_at=now,
            updated_at=now,
        )
        await self._store.add_webhook_endpoint(endpoint)
        return endpoint, secret

    async def list_endpoints(self, user_id: str) -> list[WebhookEndpoint]:
        """The user's endpoints, oldest first."""
        return await self._store.list_webhook_endpoints(object_id_arg(user_id, field="user_id"))

    async def get_endpoint(self, user_id: str, endpoint_id: str) -> WebhookEndpoint:
        """One of the user's endpoints (NotFoundError if not theirs)."""
        return found(
            await self._store.get_webhook_endpoint(
                object_id_arg(user_id, field="user_id"), object_id_arg(endpoint_id, field="id")
            ),
            "webhook endpoint",
            endpoint_id,
        )

    async def update_endpoint(
        self,
        user_id: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        kinds: Sequence[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Change an endpoint. Enabling a disabled one clears why it was disabled and makes
        its waiting messages due at once; the events logged while it was off are queued
        too (nothing is lost)."""
        endpoint = await self.get_endpoint(user_id, endpoint_id)
        changes: dict[str, Any] = {"updated_at": self._clock()}
        if url is not None:
            changes["url"] = await self._url(url)
        if kinds is not None:
            changes["kinds"] = _kinds(kinds)
        if description is not None:
            changes["description"] = description.strip()[:200]
        if enabled is not None:
            changes["enabled"] = enabled
            if enabled:
                changes |= {"disabled_reason": None, "disabled_at": None, "failing_since": None}
            elif endpoint.enabled:
                changes |= {
                    "disabled_reason": "disabled by its owner",
                    "disabled_at": self._clock(),
                }
        updated = await self._update(endpoint, changes)
        if enabled and not endpoint.enabled:
            # What waited while it was off goes now, not on its old retry schedule.
            await self._store.resume_webhook_messages(endpoint.id, now=changes["updated_at"])
        return updated

    async def delete_endpoint(self, user_id: str, endpoint_id: str) -> None:
        """Remove an endpoint, its queue and its log."""
        endpoint = await self.get_endpoint(user_id, endpoint_id)
        await self._store.delete_webhook_endpoint(endpoint.user_id, endpoint.id)

    async def rotate_secret(self, user_id: str, endpoint_id: str) -> str:
        """A new signing secret (shown this once); for SECRET_OVERLAP messages are signed
        with the previous one too."""
        endpoint = await self.get_endpoint(user_id, endpoint_id)
        now = self._clock()
        secret = new_secret()
        previous = self._secrets.decrypt(
            endpoint.secret, context=secret_field(endpoint.id, "secret")
        )
        changes = {
            "secret": self._secrets.encrypt(secret, context=secret_field(endpoint.id, "secret")),
            "previous_secret": self._secrets.encrypt(
                previous, context=secret_field(endpoint.id, "previous_secret")
            ),
            "previous_secret_until": now + SECRET_OVERLAP,
            "updated_at": now,
        }
        await self._update(endpoint, changes)
        return secret

    async def rotate_keys(self) -> int:
        """Re-encrypt every endpoint's secrets under the newest encryption key (`mailramp
        keys rotate`); how many were. One changed meanwhile is already under it."""
        rotated = 0
        for endpoint in await self._store.all_webhook_endpoints():
            for field in ("secret", "previous_secret"):
                ciphertext = getattr(endpoint, field)
                if not ciphertext:
                    continue
                new = self._secrets.rotate(ciphertext, context=secret_field(endpoint.id, field))
                rotated += await self._store.replace_webhook_secret(
                    endpoint.id, field, old=ciphertext, new=new
                )
        return rotated

    async def send_test(self, user_id: str, endpoint_id: str) -> WebhookAttempt:
        """Send a `webhook.test` message now, whether or not the endpoint is enabled; the
        attempt (status, latency) is logged with the others."""
        endpoint = await self.get_endpoint(user_id, endpoint_id)
        now = self._clock()
        message_id = new_object_id()
        payload = {
            "type": TEST_TYPE,
            "timestamp": now.isoformat(),
            "data": {"endpoint_id": endpoint.id, "message": "a test from mailramp"},
        }
        message = WebhookMessage(
            id=message_id,
            endpoint_id=endpoint.id,
            user_id=endpoint.user_id,
            seq=None,
            event_id=message_id,
            person="test",
            type=TEST_TYPE,
            payload=json.dumps(payload, separators=(",", ":")),
            created_at=now,
            updated_at=now,
        )
        await self._store.add_webhook_message(message)
        return await self._dispatcher.attempt(endpoint, message, manual=True)

    async def messages(
        self,
        user_id: str,
        endpoint_id: str,
        *,
        status: MessageStatus | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[WebhookMessage]:
        """The endpoint's messages, newest first."""
        endpoint = await self.get_endpoint(user_id, endpoint_id)
        query = MessageQuery(endpoint.id, status, offset, limit)
        return await self._store.list_webhook_messages(endpoint.user_id, query)

    async def attempts(self, user_id: str, message_id: str) -> list[WebhookAttempt]:
        """Every attempt at one of the user's messages, oldest first."""
        message = await self._message(user_id, message_id)
        return await self._store.list_webhook_attempts(message.user_id, message.id)

    async def redeliver(self, user_id: str, message_id: str) -> WebhookMessage:
        """Queue a message again, due now, with a fresh retry schedule."""
        message = await self._message(user_id, message_id)
        return found(
            await self._store.redeliver_webhook_message(
                message.user_id, message.id, now=self._clock()
            ),
            "webhook message",
            message_id,
        )

    async def _message(self, user_id: str, message_id: str) -> WebhookMessage:
        return found(
            await self._store.get_webhook_message(
                object_id_arg(user_id, field="user_id"), object_id_arg(message_id, field="id")
            ),
            "webhook message",
            message_id,
        )

    async def _update(self, endpoint: WebhookEndpoint, changes: dict[str, Any]) -> WebhookEndpoint:
        return found(
            await self._store.update_webhook_endpoint(endpoint.user_id, endpoint.id, changes),
            "webhook endpoint",
            endpoint.id,
        )

    async def _url(self, url: str) -> str:
        """A URL an endpoint may have: http(s), a host that resolves to public addresses
        (unless the operator allows private ones), no credentials in it."""
        text = str(url or "").strip()
        if not text or len(str(url)) > URL_MAX:
            raise ValidationError("url", f"a URL of 1 to {URL_MAX} characters is needed")
        try:
            parts = urlsplit(text)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as error:
            raise ValidationError("url", f"not a URL: {error}", value=text) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(
                "url", f"{text!r} is not an http:// or https:// URL with a host", value=text
            )
        if parts.username or parts.password:
            raise ValidationError("url", "a webhook URL may not carry a user name or password")
        try:
            await resolve_host(parts.hostname, port, allow_private=self._allow_private)
        except HostError as error:
            raise ValidationError("url", error.message, value=text) from None
        return text


def _kinds(kinds: Sequence[str]) -> list[str]:
    """The event types an endpoint asks for, each checked (field `kinds.N`), in log order."""
    known = {kind.value for kind in EventType}
    for position, kind in enumerate(kinds):
        if kind not in known:
            raise ValidationError(
                f"kinds.{position}",
                f"{kind!r} is not an event type; one of: {', '.join(sorted(known))}",
                value=kind,
            )
    return sorted(set(kinds), key=[kind.value for kind in EventType].index)
