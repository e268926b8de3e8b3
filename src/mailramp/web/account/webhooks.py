"""Clerk's webhooks (delivered by Svix): keep users in step with Clerk."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from svix.webhooks import Webhook, WebhookVerificationError

from mailramp.errors import AuthenticationError, ForbiddenError, NotFoundError
from mailramp.runtime import Runtime
from mailramp.web.deps import RuntimeDep

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


class ClerkDelivery(BaseModel):
    """What a delivery did: `handled` false for an event mailramp does not act on, or
    one it had already processed (`reason`); the user it created or updated."""

    handled: bool
    reason: str | None = None
    user_id: str | None = None


def _primary_email(data: dict[str, Any]) -> str | None:
    primary = data.get("primary_email_address_id")
    for address in data.get("email_addresses") or []:
        if isinstance(address, dict) and address.get("id") == primary:
            value = address.get("email_address")
            return value if isinstance(value, str) else None
    return None


def _name(data: dict[str, Any]) -> str | None:
    parts = [data.get("first_name"), data.get("last_name")]
    name = " ".join(part for part in parts if isinstance(part, str) and part)
    return name or (data.get("username") if isinstance(data.get("username"), str) else None)


@router.post("/clerk", response_model_exclude_none=True)
async def clerk_webhook(request: Request, runtime: RuntimeDep) -> ClerkDelivery:
    """`user.created` / `user.updated` create or update the user; `user.deleted`
    deactivates them. The Svix signature is checked before anything is read."""
    secret = runtime.settings.clerk_webhook_secret
    if secret is None:
        raise ForbiddenError("Clerk webhooks are not configured (MAILRAMP_CLERK_WEBHOOK_SECRET)")
    body = await request.body()
    try:
        Webhook(secret.get_secret_value()).verify(body, dict(request.headers))
    except WebhookVerificationError:
        raise AuthenticationError("invalid webhook signature") from None
    # Svix signs each delivery with its message id; a delivery replayed within the
    # signature's five minutes is still validly signed, so it is recognised by the id.
    delivery = request.headers.get("svix-id", "")
    if not await runtime.auth.first_delivery(delivery):
        return ClerkDelivery(handled=False, reason="this delivery was already processed")
    try:
        return await _process(json.loads(body), runtime)
    except BaseException:
        await runtime.auth.delivery_failed(delivery)
        raise


async def _process(event: dict[str, Any], runtime: Runtime) -> ClerkDelivery:
    kind, data = event.get("type"), event.get("data") or {}
    clerk_user_id = data.get("id")
    if not isinstance(clerk_user_id, str):
        return ClerkDelivery(handled=False)
    accounts = runtime.accounts
    if kind in ("user.created", "user.updated"):
        email, name = _primary_email(data), _name(data)
        try:
            user = await runtime.auth.clerk_account(clerk_user_id, user_name=name, email=email)
        except ForbiddenError as closed:
            # Answered 200: Svix would otherwise deliver it again and again.
            return ClerkDelivery(handled=False, reason=closed.message)
        changes: dict[str, Any] = {}
        if name and name != user.user_name:
            changes["user_name"] = name
        if email and email.lower() != user.email:
            changes["email"] = email
        if changes:
            await accounts.update_user(user.user_id, **changes)
        return ClerkDelivery(handled=True, user_id=user.user_id)
    if kind == "user.deleted":
        with contextlib.suppress(NotFoundError):
            existing = await accounts.get_user_by_clerk_id(clerk_user_id)
            await accounts.deactivate_user(existing.user_id)
        return ClerkDelivery(handled=True)
    return ClerkDelivery(handled=False)
