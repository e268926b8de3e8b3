"""API keys and sessions: stored as hashes, never as the secrets themselves."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

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


class AuditAction(StrEnum):
    """What an admin (or the operator at the command line) did to an account."""

    INVITE = "user.invite"
    DEACTIVATE = "user.deactivate"
    REACTIVATE = "user.reactivate"
    RESET_PASSWORD = "user.reset_password"  # noqa: S105 (an action's name)
    MAKE_ADMIN = "user.make_admin"
    REMOVE_ADMIN = "user.remove_admin"
    CREATE_KEY = "key.create"
    REVOKE_KEY = "key.revoke"


class AuditEntry(Record):
    """One administrative action: who did what to whom, when. Written before the action's
    answer is given and never changed; no secret is ever part of it (a reset password or a
    new key is named, not recorded)."""

    id: ObjectIdStr = Field(alias="_id")
    at: UTCDateTime
    actor_id: ObjectIdStr | None = None
    """The admin who acted; None for the operator at the command line (`actor` says who)."""
    actor: str
    """Who acted, as shown: the admin's login, or `operator USER@HOST (command line)`."""
    action: AuditAction
    target_id: ObjectIdStr | None = None
    target: str
    """The account acted on, by its login."""
    detail: str | None = None
