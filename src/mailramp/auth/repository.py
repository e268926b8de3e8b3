"""What signing in needs from storage."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from mailramp.auth.models import ApiKey, AuditEntry, Session


class AuthRepository(Protocol):
    """API keys and sessions, scoped to their user; lookups by hash for authentication."""

    async def insert_api_key(self, key: ApiKey) -> ApiKey:
        """Store a new key."""
        ...

    async def list_api_keys(self, user_id: str) -> list[ApiKey]:
        """The user's keys, newest first, revoked ones included."""
        ...

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The unrevoked key with this hash."""
        ...

    async def mark_api_key_used(self, key_id: str, *, now: datetime) -> None:
        """Set the key's `last_used_at`."""
        ...

    async def revoke_api_key(self, user_id: str, key_id: str, *, now: datetime) -> bool:
        """Revoke one of the user's keys; False if there is no such key."""
        ...

    async def revoke_api_keys(self, user_id: str, *, now: datetime) -> int:
        """Revoke every key of the user; returns how many were live."""
        ...

    async def remember_webhook_delivery(
        self, delivery_id: str, *, now: datetime, forget_before: datetime
    ) -> bool:
        """Note a webhook delivery as processed; False if it already was. Deliveries
        received before `forget_before` are forgotten."""
        ...

    async def forget_webhook_delivery(self, delivery_id: str) -> None:
        """Forget a delivery whose processing failed, so its retry is processed."""
        ...

    async def insert_session(self, session: Session) -> Session:
        """Store a new session."""
        ...

    async def find_session(self, token_hash: str, *, now: datetime) -> Session | None:
        """The live (unrevoked, unexpired) session with this hash."""
        ...

    async def revoke_session(self, user_id: str, session_id: str, *, now: datetime) -> bool:
        """End one of the user's sessions; False if it was not open."""
        ...

    async def revoke_sessions(self, user_id: str, *, now: datetime, keep: str | None = None) -> int:
        """End all the user's sessions, but `keep` (the one changing the password)."""
        ...

    async def reserve_login_attempt(
        self, user_id: str, *, seen_failures: int, now: datetime
    ) -> bool:
        """Count one password attempt before it is checked, only if the user's count is
        still `seen_failures`; False if another attempt took that place first."""
        ...

    async def reset_login_failures(self, user_id: str) -> None:
        """A successful login clears the count (its own reserved attempt included)."""
        ...


class AuditRepository(Protocol):
    """The audit log of administrative actions: appended to, read newest first."""

    async def insert_audit_entry(self, entry: AuditEntry) -> AuditEntry:
        """Append one entry."""
        ...

    async def list_audit_entries(self, *, offset: int, limit: int) -> list[AuditEntry]:
        """Entries newest first (by `at`, then `_id`)."""
        ...
