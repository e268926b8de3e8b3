"""Outgoing webhooks over JSON: endpoints (the signing secret shown once), their delivery
log, tests and redelivery."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from mailramp.tracking.models import EventType
from mailramp.web.deps import CallerDep, RuntimeDep
from mailramp.web.responses import PagePublic, PagingDep, Public
from mailramp.webhooks.models import MessageStatus
from mailramp.webhooks.service import URL_MAX

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


URL_SCHEMA: dict[str, Any] = {"pattern": r"^\s*[hH][tT][tT][pP][sS]?://[^/?#@\s]"}
"""An http(s) URL with a host (whether the host resolves to a public address is checked
when it is given, and cannot be declared)."""
KINDS_SCHEMA: dict[str, Any] = {
    "items": {"type": "string", "enum": [kind.value for kind in EventType]}
}


class WebhookEndpointIn(BaseModel):
    """A URL to receive your events: `kinds` lists the event types it takes (all if
    empty; the types of `GET /events`)."""

    url: str = Field(max_length=URL_MAX, json_schema_extra=URL_SCHEMA)
    kinds: list[str] = Field(default_factory=list, max_length=40, json_schema_extra=KINDS_SCHEMA)
    description: str = Field(default="", max_length=200)


class WebhookEndpointChange(BaseModel):
    """What to change of an endpoint; `enabled: true` turns a disabled one back on (what
    waited is sent at once)."""

    url: str | None = Field(default=None, max_length=URL_MAX, json_schema_extra=URL_SCHEMA)
    kinds: list[str] | None = Field(default=None, max_length=40, json_schema_extra=KINDS_SCHEMA)
    description: str | None = Field(default=None, max_length=200)
    enabled: bool | None = None


class WebhookEndpointPublic(Public):
    """An endpoint as the API shows it: never its secret. `disabled_reason` says why it was
    turned off (410 Gone, five days of failed deliveries, or you)."""

    id: str = Field(serialization_alias="_id")
    url: str
    kinds: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    last_success_at: datetime | None
    created_at: datetime


class NewWebhookEndpointPublic(WebhookEndpointPublic):
    """An endpoint just made: `secret` (whsec_…) verifies its signatures, shown this once."""

    secret: str


class WebhookSecretPublic(Public):
    """A new signing secret, shown this once; the previous one signs too for 24 hours."""

    secret: str


class WebhookMessagePublic(Public):
    """One event queued for an endpoint: its `webhook-id`, where it stands, and what the
    last attempt got."""

    id: str = Field(serialization_alias="_id")
    event_id: str = Field(description="The `webhook-id` header: the same at every retry.")
    seq: int | None
    type: str
    status: MessageStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class WebhookAttemptPublic(Public):
    """One delivery attempt: the status the endpoint answered (null if none) and how long
    it took."""

    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    manual: bool


@router.post("/webhooks", status_code=201)
async def add_webhook(
    body: WebhookEndpointIn, caller: CallerDep, runtime: RuntimeDep
) -> NewWebhookEndpointPublic:
    """Send your events to a URL from now on. Its host must resolve to public addresses
    (unless the operator allows private ones). Keep `secret`: it is not shown again."""
    endpoint, secret = await runtime.webhooks.add_endpoint(
        caller.user.user_id, body.url, kinds=body.kinds, description=body.description
    )
    public = WebhookEndpointPublic.of(endpoint).model_dump()
    return NewWebhookEndpointPublic(**public, secret=secret)


@router.get("/webhooks")
async def list_webhooks(caller: CallerDep, runtime: RuntimeDep) -> list[WebhookEndpointPublic]:
    """Your endpoints, oldest first."""
    endpoints = await runtime.webhooks.list_endpoints(caller.user.user_id)
    return [WebhookEndpointPublic.of(endpoint) for endpoint in endpoints]


@router.get("/webhooks/{endpoint_id}")
async def get_webhook(
    endpoint_id: str, caller: CallerDep, runtime: RuntimeDep
) -> WebhookEndpointPublic:
    """One endpoint."""
    return WebhookEndpointPublic.of(
        await runtime.webhooks.get_endpoint(caller.user.user_id, endpoint_id)
    )


@router.patch("/webhooks/{endpoint_id}")
async def change_webhook(
    endpoint_id: str, body: WebhookEndpointChange, caller: CallerDep, runtime: RuntimeDep
) -> WebhookEndpointPublic:
    """Change an endpoint's URL, kinds or description, or turn it off or on."""
    endpoint = await runtime.webhooks.update_endpoint(
        caller.user.user_id,
        endpoint_id,
        url=body.url,
        kinds=body.kinds,
        description=body.description,
        enabled=body.enabled,
    )
    return WebhookEndpointPublic.of(endpoint)


@router.delete("/webhooks/{endpoint_id}", status_code=204)
async def delete_webhook(endpoint_id: str, caller: CallerDep, runtime: RuntimeDep) -> Response:
    """Remove an endpoint, with its queue and delivery log."""
    await runtime.webhooks.delete_endpoint(caller.user.user_id, endpoint_id)
    return Response(status_code=204)


@router.post("/webhooks/{endpoint_id}/rotate-secret")
async def rotate_webhook_secret(
    endpoint_id: str, caller: CallerDep, runtime: RuntimeDep
) -> WebhookSecretPublic:
    """A new signing secret, shown this once; for 24 hours messages carry a signature by
    the previous one too, so your receiver can switch without dropping any."""
    secret = await runtime.webhooks.rotate_secret(caller.user.user_id, endpoint_id)
    return WebhookSecretPublic(secret=secret)


@router.post("/webhooks/{endpoint_id}/test")
async def test_webhook(
    endpoint_id: str, caller: CallerDep, runtime: RuntimeDep
) -> WebhookAttemptPublic:
    """Send a `webhook.test` message now and say what the endpoint answered."""
    attempt = await runtime.webhooks.send_test(caller.user.user_id, endpoint_id)
    return WebhookAttemptPublic.of(attempt)


@router.get("/webhooks/{endpoint_id}/messages")
async def webhook_messages(
    endpoint_id: str,
    caller: CallerDep,
    runtime: RuntimeDep,
    paging: PagingDep,
    status: Annotated[MessageStatus | None, Query()] = None,
) -> PagePublic[WebhookMessagePublic]:
    """The endpoint's delivery log, newest first: each message and its last attempt."""
    page = await runtime.webhooks.messages(
        caller.user.user_id, endpoint_id, status=status, offset=paging.offset, limit=paging.limit
    )
    return PagePublic[WebhookMessagePublic].of(page)


@router.get("/webhook-messages/{message_id}/attempts")
async def webhook_attempts(
    message_id: str, caller: CallerDep, runtime: RuntimeDep
) -> list[WebhookAttemptPublic]:
    """Every attempt at one message, oldest first."""
    attempts = await runtime.webhooks.attempts(caller.user.user_id, message_id)
    return [WebhookAttemptPublic.of(attempt) for attempt in attempts]


@router.post("/webhook-messages/{message_id}/redeliver")
async def redeliver_webhook_message(
    message_id: str, caller: CallerDep, runtime: RuntimeDep
) -> WebhookMessagePublic:
    """Send a message again (delivered or failed), now, with a fresh retry schedule."""
    return WebhookMessagePublic.of(
        await runtime.webhooks.redeliver(caller.user.user_id, message_id)
    )
