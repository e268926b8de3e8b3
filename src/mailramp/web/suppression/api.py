"""The suppression list over JSON."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from mailramp.kit.types import EmailAddress
from mailramp.suppression.models import Suppression
from mailramp.web.deps import CallerDep, RuntimeDep
from mailramp.web.responses import PagePublic, PagingDep, Public

router = APIRouter(prefix="/api/v1")


class SuppressionCreate(BaseModel):
    email: EmailAddress


class SuppressionPublic(Suppression, Public):
    """A suppressed address and why (`unsubscribed`, `bounced` or `manual`)."""


class SuppressionAdded(Public):
    """The address as stored, and False when it was already suppressed."""

    email: str
    added: bool


@router.get("/suppressions", tags=["suppression"])
async def list_suppressions(
    caller: CallerDep, runtime: RuntimeDep, paging: PagingDep
) -> PagePublic[SuppressionPublic]:
    """Addresses none of your campaigns will send to."""
    page = await runtime.suppression.list_suppressions(
        caller.user.user_id, offset=paging.offset, limit=paging.limit
    )
    return PagePublic[SuppressionPublic].of(page)


@router.post("/suppressions", status_code=201, tags=["suppression"])
async def add_suppression(
    body: SuppressionCreate, caller: CallerDep, runtime: RuntimeDep
) -> SuppressionAdded:
    """Never send to this address again."""
    email, added = await runtime.suppression.add(caller.user.user_id, body.email)
    return SuppressionAdded(email=email, added=added)


@router.delete("/suppressions/{email}", status_code=204, tags=["suppression"])
async def remove_suppression(email: str, caller: CallerDep, runtime: RuntimeDep) -> Response:
    """Allow an address again."""
    await runtime.suppression.remove(caller.user.user_id, email)
    return Response(status_code=204)
