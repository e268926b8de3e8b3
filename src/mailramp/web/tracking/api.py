"""What the inbox poller found and could not match, over JSON."""

from __future__ import annotations

from fastapi import APIRouter

from mailramp.tracking.models import UnmatchedInbound
from mailramp.web.deps import CallerDep, RuntimeDep
from mailramp.web.responses import PagePublic, PagingDep, Public

router = APIRouter(prefix="/api/v1")


class UnmatchedPublic(UnmatchedInbound, Public):
    """A bounce or complaint from one of your inboxes that matches no email you sent:
    `kind` (hard_bounce, soft_bounce, complaint), the address it names, its status and
    reason, and the message's sender, subject and Message-ID."""


@router.get("/inbound/unmatched", tags=["tracking"])
async def list_unmatched(
    caller: CallerDep, runtime: RuntimeDep, paging: PagingDep
) -> PagePublic[UnmatchedPublic]:
    """Bounces and complaints that match none of your emails, newest first."""
    page = await runtime.tracking.list_unmatched(
        caller.user.user_id, offset=paging.offset, limit=paging.limit
    )
    return PagePublic[UnmatchedPublic].of(page)
