"""What the accounts domain needs from storage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from mailramp.accounts.models import User


class UserRepository(Protocol):
    """Users. A user is their own tenant: only the admin service (auth/admin.py) lists
    them all."""

    async def insert_user(self, user: User) -> User:
        """Store a new user; DuplicateError names `login_id`, `email` or `clerk_user_id`."""
        ...

    async def get_user(self, user_id: str) -> User | None:
        """The user with this id."""
        ...

    async def get_user_by_login_id(self, login_id: str) -> User | None:
        """The user with this (lowercased) login id."""
        ...

    async def get_user_by_clerk_id(self, clerk_user_id: str) -> User | None:
        """The user linked to this Clerk user id."""
        ...

    async def get_user_by_email(self, email: str) -> User | None:
        """The user with this (normalised) email."""
        ...

    async def update_user(self, user_id: str, changes: Mapping[str, Any]) -> User | None:
        """Apply `changes` (stored field names) and return the user, or None if missing."""
        ...

    async def any_user(self) -> bool:
        """Whether the instance has a user yet."""
        ...

    async def list_users(self) -> list[User]:
        """Every user, oldest first (by `created_at`, then `_id`)."""
        ...
