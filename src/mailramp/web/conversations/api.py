"""Conversations over JSON: the inbox, people's lead statuses and your own labels."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from mailramp.conversations.answers import ANSWER_MAX
from mailramp.conversations.models import LABEL_MAX
from mailramp.conversations.repository import ThreadQuery
from mailramp.kit.types import NOT_BLANK, ObjectIdStr
from mailramp.web.deps import CallerDep, RuntimeDep
from mailramp.web.responses import Download, PagePublic, PagingDep, Public

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

    name: str = Field(max_length=LABEL_MAX, json_schema_extra={"pattern": NOT_BLANK})


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


class AttachmentPublic(Public):
    """A file a message carried: download it by `id` when `kept` (never shown inline)."""

    id: str
    filename: str
    content_type: str
    size: int
    kept: bool


class ConversationMessagePublic(Public):
    """One message of a conversation: `text` what was written, `quoted` the history the
    sender's client quoted, `html` the sanitised HTML (null if none); `problem` why the
    body is not there."""

    id: str = Field(serialization_alias="_id")
    direction: str
    kind: str
    message_id: str | None
    sender: str
    to: str
    subject: str
    sent_at: datetime | None
    received_at: datetime
    text: str
    quoted: str
    html: str | None
    attachments: list[AttachmentPublic]
    size: int
    problem: str | None
    read_at: datetime | None
    mailbox_id: str
    status: str | None = Field(
        description="An answer's: sending, sent, failed (did not leave) or uncertain (may "
        "have left: never sent again by itself)."
    )
    error: str | None
    track_opens: bool
    opened_at: datetime | None
    human_opened_at: datetime | None


class ThreadPublic(Public):
    """One conversation in the inbox list."""

    campaign_id: str
    campaign_name: str
    recipient_email: str
    record_id: str = Field(description="Opens the thread: GET /inbox/{campaign_id}/{record_id}")
    lead_status: str | None
    last_at: datetime
    messages: int
    unread: int
    latest: ConversationMessagePublic


class SentEmailPublic(Public):
    """An email of the campaign that went to the person."""

    id: str = Field(serialization_alias="_id")
    step: int
    message_id: str | None
    sent_at: datetime | None
    status: str


class ThreadDetailPublic(Public):
    """One conversation: the person, what the campaign sent them, every message kept."""

    campaign_id: str
    campaign_name: str
    recipient_email: str
    lead_status: str | None
    sent: list[SentEmailPublic]
    messages: list[ConversationMessagePublic]


@router.get("/inbox", tags=["conversations"])
async def inbox(
    caller: CallerDep,
    runtime: RuntimeDep,
    paging: PagingDep,
    search: Annotated[str | None, Query(max_length=200)] = None,
    lead_status: Annotated[str | None, Query(max_length=60)] = None,
    mailbox_id: ObjectIdStr | None = None,
    unread: bool = False,
    automatic: bool = False,
) -> PagePublic[ThreadPublic]:
    """Every conversation your campaigns started, the latest message first: search
    (address, campaign name, sender, subject, text), by lead status or mailbox, unread
    only; `automatic=true` lists threads of automatic replies too."""
    query = ThreadQuery(
        search=search or None,
        lead_status=lead_status or None,
        mailbox_id=mailbox_id or None,
        unread=unread,
        automatic=automatic,
        offset=paging.offset,
        limit=paging.limit,
    )
    page = await runtime.inbox.threads(caller.user.user_id, query)
    items = [
        ThreadPublic.model_validate(
            {**thread.__dict__, "record_id": thread.latest.record_id, "latest": thread.latest},
            from_attributes=True,
        )
        for thread in page.items
    ]
    return PagePublic[ThreadPublic](
        items=items, total=page.total, offset=page.offset, limit=page.limit
    )


@router.get("/inbox/attachments/{file_id}", tags=["conversations"], response_class=Download)
async def inbox_attachment(file_id: str, caller: CallerDep, runtime: RuntimeDep) -> Download:
    """Download a kept attachment. Always as a download, never shown in the browser."""
    name, _, file = await runtime.inbox.attachment(caller.user.user_id, file_id)
    return Download(
        content=file.data,
        headers={
            "Content-Disposition": _disposition(name),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )


@router.get("/inbox/{campaign_id}/{record_id}", tags=["conversations"])
async def inbox_thread(
    campaign_id: str, record_id: str, caller: CallerDep, runtime: RuntimeDep
) -> ThreadDetailPublic:
    """One conversation (the person of this email of the campaign). Reading it here
    changes nothing (a program syncing the inbox leaves it unread for the people who read
    it); `POST …/read` marks it read, as opening it on the dashboard does."""
    thread = await runtime.inbox.thread(
        caller.user.user_id, campaign_id, record_id, mark_read=False
    )
    return ThreadDetailPublic(
        campaign_id=thread.campaign_id,
        campaign_name=thread.campaign_name,
        recipient_email=thread.person.recipient_email,
        lead_status=thread.person.lead_status,
        sent=[SentEmailPublic.of(email) for email in thread.sent],
        messages=[ConversationMessagePublic.of(message) for message in thread.messages],
    )


class AnswerIn(BaseModel):
    """An answer to the person of a thread, in plain text. Send the same `answer_id` (24 hex
    characters you make) when retrying: it is sent at most once."""

    text: str = Field(max_length=ANSWER_MAX, json_schema_extra={"pattern": NOT_BLANK})
    answer_id: ObjectIdStr | None = None
    track_opens: bool = Field(
        default=False, description="Add a pixel: its opens show on the answer (`opened_at`)."
    )


@router.post("/inbox/{campaign_id}/{record_id}/answer", tags=["conversations"], status_code=201)
async def inbox_answer(
    campaign_id: str, record_id: str, body: AnswerIn, caller: CallerDep, runtime: RuntimeDep
) -> ConversationMessagePublic:
    """Answer the person through the mailbox the conversation is with, in its thread
    (In-Reply-To, References), their message quoted, without tracking. `status` says
    whether it left."""
    answer = await runtime.answers().answer(
        caller.user.user_id,
        campaign_id,
        record_id,
        body.text,
        answer_id=body.answer_id,
        track_opens=body.track_opens,
    )
    return ConversationMessagePublic.of(answer)


class MarkedRead(BaseModel):
    """How many of the person's messages were unread."""

    marked_read: int


class MarkedUnread(BaseModel):
    """How many of the person's messages were read."""

    marked_unread: int


@router.post("/inbox/{campaign_id}/{record_id}/read", tags=["conversations"])
async def inbox_read(
    campaign_id: str, record_id: str, caller: CallerDep, runtime: RuntimeDep
) -> MarkedRead:
    """Mark the person's messages read; how many were unread."""
    changed = await runtime.inbox.mark_read(caller.user.user_id, campaign_id, record_id, read=True)
    return MarkedRead(marked_read=changed)


@router.post("/inbox/{campaign_id}/{record_id}/unread", tags=["conversations"])
async def inbox_unread(
    campaign_id: str, record_id: str, caller: CallerDep, runtime: RuntimeDep
) -> MarkedUnread:
    """Mark the person's messages unread again; how many were read."""
    changed = await runtime.inbox.mark_read(caller.user.user_id, campaign_id, record_id, read=False)
    return MarkedUnread(marked_unread=changed)


def _disposition(name: str) -> str:
    """`attachment` with the file name, ASCII for old clients and UTF-8 (RFC 6266) too."""
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\\\' else "_" for c in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
