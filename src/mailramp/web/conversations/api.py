"""Conversations over JSON: people's lead statuses and your own labels."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from mailramp.web.deps import CallerDep, RuntimeDep
from mailramp.web.responses import Public

router = APIRouter(prefix="/api/v1")


class PersonPublic(Public):
    """One person of a campaign: their address, lead status and when it was set, and when
    their sequence stopped."""

    campaign_id: str
    recipient_email: str
    lead_status: str | None
    lead_status_at: datetime | None
    stopped_at: datetime | None


class LeadStatusIn(BaseModel):
    """A lead status to set: a built-in one (`interested`, `meeting_booked`,
    `meeting_completed`, `won`, `lost`, `not_interested`, `wrong_person`, `out_of_office`,
    `do_not_contact`) or the name of one of your labels; null clears it."""

    status: str | None = Field(max_length=60)


class LeadLabelIn(BaseModel):
    """A label of your own, offered beside the built-in lead statuses."""

    name: str = Field(max_length=200)


class LeadLabelPublic(Public):
    """A label of your own."""

    name: str
    created_at: datetime


class LeadChoicesPublic(Public):
    """Every lead status you can set: the built-in ones, then your labels."""

    statuses: list[str]


@router.put("/campaigns/{campaign_id}/recipients/{record_id}/lead-status", tags=["conversations"])
async def set_lead_status(
    campaign_id: str, record_id: str, body: LeadStatusIn, caller: CallerDep, runtime: RuntimeDep
) -> PersonPublic:
    """Set the lead status of the person of this email. `not_interested` and
    `do_not_contact` end their sequence; `do_not_contact` also suppresses the address. A
    `lead_status` event is logged (and sent to your webhooks)."""
    person = await runtime.leads.set_status(
        caller.user.user_id, campaign_id, record_id, body.status, source="api"
    )
    return PersonPublic.of(person)


@router.get("/lead-statuses", tags=["conversations"])
async def lead_statuses(caller: CallerDep, runtime: RuntimeDep) -> LeadChoicesPublic:
    """Every lead status you can set: the built-in ones, then your labels."""
    return LeadChoicesPublic(statuses=await runtime.leads.choices(caller.user.user_id))


@router.post("/lead-labels", tags=["conversations"], status_code=201)
async def add_lead_label(
    body: LeadLabelIn, caller: CallerDep, runtime: RuntimeDep
) -> LeadLabelPublic:
    """Add a label of your own (1 to 40 characters, not a built-in status's name; 409 if
    you have one of that name in any case)."""
    return LeadLabelPublic.of(await runtime.leads.add_label(caller.user.user_id, body.name))


@router.delete("/lead-labels/{name}", tags=["conversations"], status_code=204)
async def delete_lead_label(name: str, caller: CallerDep, runtime: RuntimeDep) -> Response:
    """Remove a label no one holds (409 says how many people do)."""
    await runtime.leads.delete_label(caller.user.user_id, name)
    return Response(status_code=204)
