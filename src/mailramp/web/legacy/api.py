"""The previous application's collections, read-only, over JSON."""

from __future__ import annotations

from fastapi import APIRouter

from mailramp.legacy.models import LegacyCollection, LegacyDocument
from mailramp.web.deps import CallerDep, RuntimeDep
from mailramp.web.responses import PagePublic, PagingDep, Public

router = APIRouter(prefix="/api/v1")


class LegacyDocumentPublic(LegacyDocument, Public):
    """A document of the previous application's collections, as it was imported."""


@router.get("/legacy/{collection}", tags=["legacy"])
async def list_legacy(
    collection: LegacyCollection, caller: CallerDep, runtime: RuntimeDep, paging: PagingDep
) -> PagePublic[LegacyDocumentPublic]:
    """Your documents of `warm_up_emails_table` or `email_campaigns` (read-only)."""
    page = await runtime.legacy.list_documents(
        collection, caller.user.user_id, offset=paging.offset, limit=paging.limit
    )
    return PagePublic[LegacyDocumentPublic].of(page)


@router.get("/legacy/{collection}/{document_id}", tags=["legacy"])
async def get_legacy(
    collection: LegacyCollection, document_id: str, caller: CallerDep, runtime: RuntimeDep
) -> LegacyDocumentPublic:
    """One legacy document."""
    document = await runtime.legacy.get_document(collection, caller.user.user_id, document_id)
    return LegacyDocumentPublic.of(document)
