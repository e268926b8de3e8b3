"""API keys and sessions: stored as hashes, never as the secrets themselves."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from mailramp.kit.types import ObjectIdStr, Record, UTCDateTime


class ApiKeyFields(Record):
    """What may be shown of an API key: its name and `prefix`, never the key or its hash."""

    id: ObjectIdStr = Field(alias="_id")
    user_id: ObjectIdStr
    name: str
    prefix: str
    created_at: UTCDateTime
    last_used_at: UTCDateTime | None = None
    revoked_at: UTCDateTime | None = None


class ApiKey(ApiKeyFields):
    """A key for scripts. `key_hash` is SHA-256 of the full key; only `prefix` is shown."""

    key_hash: str = Field(repr=False, exclude=True)


class Session(Record):
    """A signed-in browser. `token_hash` is SHA-256 of the cookie value."""

    id: ObjectIdStr = Field(alias="_id")
    user_id: ObjectIdStr
    token_hash: str = Field(repr=False, exclude=True)
    csrf_token: str = Field(repr=False, exclude=True)
    created_at: UTCDateTime
    expires_at: UTCDateTime
    revoked_at: UTCDateTime | None = None
    user_agent: str | None = None


WEBHOOK_MEMORY = timedelta(days=7)
"""How long a processed webhook delivery's id is remembered: far past Svix's five-minute
signature window, so a captured delivery replayed within that window changes nothing."""
