"""Clerk's webhook deliveries as Svix signs them, for tests of /api/v1/webhooks/clerk."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from svix.webhooks import Webhook

WEBHOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def signed_delivery(
    payload: dict[str, Any], secret: str = WEBHOOK_SECRET
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery: a fresh `svix-id`, signed now."""
    body = json.dumps(payload)
    message_id = f"msg_{time.time_ns()}"
    timestamp = datetime.now(UTC)
    headers = {
        "svix-id": message_id,
        "svix-timestamp": str(int(timestamp.timestamp())),
        "svix-signature": Webhook(secret).sign(message_id, timestamp, body),
        "content-type": "application/json",
    }
    return body.encode(), headers


def user_event(kind: str, clerk_id: str, first: str, *, email: str | None = None) -> dict[str, Any]:
    """A `user.created` / `user.updated` event of Clerk's, named First Hook."""
    address = email or f"{first.lower()}@example.com"
    return {
        "type": kind,
        "data": {
            "id": clerk_id,
            "first_name": first,
            "last_name": "Hook",
            "primary_email_address_id": "idn_1",
            "email_addresses": [{"id": "idn_1", "email_address": address}],
        },
    }
