"""What reading the legacy collections needs from storage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from mailramp.kit.types import Page
from mailramp.legacy.models import LegacyCollection, LegacyDocument


class LegacyRepository(Protocol):
    """The old collections: imported once from a previous deployment, then only read."""

    async def import_legacy(
        self, collection: LegacyCollection, documents: Sequence[dict[str, Any]]
    ) -> int:
        """Store old documents as they are (an `_id` is kept or given); returns how many."""
        ...

    async def list_legacy(
        self, collection: LegacyCollection, user_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[LegacyDocument]:
        """The user's documents of a legacy collection, oldest first."""
        ...

    async def get_legacy(
        self, collection: LegacyCollection, user_id: str, document_id: str
    ) -> LegacyDocument | None:
        """One of the user's legacy documents."""
        ...

    def iter_legacy(self, collection: LegacyCollection) -> AsyncIterator[LegacyDocument]:
        """Every document of a legacy collection, whoever owns it, in `_id` order, read a
        batch at a time (unscoped: for operator tools such as `mailramp migrate-legacy`)."""
        ...
