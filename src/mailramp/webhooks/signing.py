"""The Standard Webhooks scheme (https://www.standardwebhooks.com): each message carries
`webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature` — `v1,` and the
base64 HMAC-SHA256 of `id.timestamp.body` under the endpoint's secret, one such signature
per secret in use (the previous one too, for a while after a rotation), space-separated.
Signed by svix's implementation of the scheme."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

SECRET_PREFIX = "whsec_"  # noqa: S105 (the scheme's prefix, not a secret)
SECRET_BYTES = 24  # the spec asks for 24 to 64 random bytes


def new_secret() -> str:
    """A fresh signing secret, `whsec_` and base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signed_headers(keys: Sequence[str], message_id: str, at: datetime, body: str) -> dict[str, str]:
    """The three headers for one attempt at sending `body` at `at`, signed with each key."""
    # Imported when first needed: the svix package takes a quarter of a second to load,
    # and every `mailramp` command would pay it.
    from svix.webhooks import Webhook

    signatures = " ".join(Webhook(key).sign(message_id, at, body) for key in keys)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
