"""What signing in needs from storage."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from mailramp.auth.models import ApiKey, Session


class AuthRepository(Protocol):
    """API keys and sessions, scoped to their user; lookups by hash for authentication."""

    async def insert_api_key(self, key: ApiKey) -> ApiKey:
        """Store a new key."""
        ...

    async def list_api_keys(self, user_id: str) -> list[ApiKey]:
        """The user's keys, newest first, revoked ones included."""
        ...

    async def find_api_key(self, key_hash: str, *, now: datetime) -> ApiKey | None:
        """The unrevoked key with this hash, marking it used."""
        ...

    async def revoke_api_key(self, user_id: str, key_id: str, *, now: datetime) -> bool:
        """Revoke one of the user's keys; False if there is no such key."""
        ...

    async def insert_session(self, session: Session) -> Session:
        """Store a new session."""
        ...

    async def find_session(self, token_hash: str, *, now: datetime) -> Session | None:
        """The live (unrevoked, unexpired) session with this hash."""
        ...

    async def revoke_sessions(
        self,
        user_id: str,
        *,
        now: datetime,
        except_id: str | None = None,
        only_id: str | None = None,
    ) -> int:
        """End the user's sessions: one (`only_id`), or all but one (`except_id`), or all."""
        ...

    async def record_login_failure(self, user_id: str, *, now: datetime) -> int:
        """Count a failed login; returns the failures in a row."""
        ...

    async def reset_login_failures(self, user_id: str) -> None:
        """A successful login clears the count."""
        ...
