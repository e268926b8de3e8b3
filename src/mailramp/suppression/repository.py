"""What the suppression list needs from storage."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from mailramp.kit.types import Page
from mailramp.suppression.models import Suppression


class SuppressionRepository(Protocol):
    """Suppressed addresses, scoped to their owner."""

    async def add_suppression(self, suppression: Suppression) -> bool:
        """Suppress an address; False if it already was (the first reason is kept)."""
        ...

    async def suppressed_among(self, user_id: str, emails: Collection[str]) -> set[str]:
        """Which of `emails` the user has suppressed."""
        ...

    async def list_suppressions(
        self, user_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[Suppression]:
        """The user's suppression list, newest first."""
        ...

    async def remove_suppression(self, user_id: str, email: str) -> bool:
        """Allow an address again; False if it was not suppressed."""
        ...
