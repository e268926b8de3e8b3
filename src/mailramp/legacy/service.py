"""Reading the legacy collections (schema migration note 1), and bringing them over once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

from mailramp.errors import ValidationError, found
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.types import Page
from mailramp.kit.validation import enum_arg, object_id_arg
from mailramp.legacy.migrate import LegacyStore, MigrationReport, migrate
from mailramp.legacy.models import LegacyCollection, LegacyDocument
from mailramp.legacy.warmup import WarmupMigrationStore, migrate_warmup


class MigrationStore(LegacyStore, WarmupMigrationStore, Protocol):
    """What reading and migrating the legacy collections needs."""


class LegacyService:
    """Read access to `warm_up_emails_table` and `email_campaigns`; no new writes go there."""

    def __init__(self, legacy: MigrationStore, *, clock: Clock = utc_now) -> None:
        self._legacy = legacy
        self._clock = clock

    async def list_documents(
        self, collection: str, user_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[LegacyDocument]:
        """The user's documents in a legacy collection, oldest first."""
        return await self._legacy.list_legacy(
            enum_arg(LegacyCollection, collection, field="collection"),
            object_id_arg(user_id, field="user_id"),
            offset=offset,
            limit=limit,
        )

    async def get_document(self, collection: str, user_id: str, document_id: str) -> LegacyDocument:
        """One of the user's legacy documents."""
        return found(
            await self._legacy.get_legacy(
                enum_arg(LegacyCollection, collection, field="collection"),
                object_id_arg(user_id, field="user_id"),
                object_id_arg(document_id, field="document_id"),
            ),
            f"{collection} document",
            document_id,
        )

    async def import_documents(self, collection: str, documents: Sequence[dict[str, Any]]) -> int:
        """Store documents exported from a previous deployment, as they were."""
        target = enum_arg(LegacyCollection, collection, field="collection")
        for row, document in enumerate(documents, start=1):
            if not isinstance(document, dict):
                raise ValidationError(
                    f"documents[{row}]", f"must be an object, got {type(document).__name__}"
                )
        return await self._legacy.import_legacy(target, documents)

    async def documents_of(self, collection: LegacyCollection) -> list[Mapping[str, Any]]:
        """Every document of a legacy collection in this database, whoever owns it: what
        the operator's migration reads."""
        return [legacy.document async for legacy in self._legacy.iter_legacy(collection)]

    async def migrate_campaigns(
        self,
        documents: AsyncIterator[Mapping[str, Any]],
        *,
        dry_run: bool = False,
        on_document: Callable[[], None] = lambda: None,
    ) -> MigrationReport:
        """Bring legacy `email_campaigns` documents over as campaigns with their metrics,
        once each (legacy/migrate.py has the mapping)."""
        return await migrate(
            self._legacy, documents, dry_run=dry_run, now=self._clock(), on_document=on_document
        )

    async def migrate_warmup_emails(
        self,
        documents: AsyncIterator[Mapping[str, Any]],
        *,
        dry_run: bool = False,
        on_document: Callable[[], None] = lambda: None,
    ) -> MigrationReport:
        """Bring legacy `warm_up_emails_table` documents over as warm-up emails where both
        ends are linked mailboxes, once each (legacy/warmup.py has the mapping)."""
        return await migrate_warmup(
            self._legacy, documents, dry_run=dry_run, now=self._clock(), on_document=on_document
        )
