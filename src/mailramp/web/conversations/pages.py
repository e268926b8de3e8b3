"""The inbox pages: every conversation, and one thread with its replies (their HTML in a
sandboxed frame that may load nothing), the lead status and the answer box."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailramp.conversations.models import shown_status
from mailramp.conversations.repository import ThreadQuery
from mailramp.errors import MailrampError, NotFoundError
from mailramp.kit.ids import is_object_id, new_object_id
from mailramp.web.dashboard import (
    PageUserDep,
    check_csrf,
    lead_choices,
    read_form,
    render,
    render_section,
)
from mailramp.web.deps import RuntimeDep

router = APIRouter(include_in_schema=False)

THREADS_PER_PAGE = 50
REPLY_FRAME_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; sandbox; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'none'"
)
"""A reply's HTML: already sanitised; even so, nothing in it may run, load or submit."""


@router.get("/inbox")
async def inbox_page(request: Request, who: PageUserDep, runtime: RuntimeDep) -> HTMLResponse:
    user_id = who.user.user_id
    asked = request.query_params
    offset = int(asked["offset"]) if asked.get("offset", "").isdigit() else 0
    mailbox = asked.get("mailbox") or None
    query = ThreadQuery(
        search=(asked.get("search") or "").strip()[:200] or None,
        lead_status=asked.get("lead_status") or None,
        mailbox_id=mailbox if mailbox and is_object_id(mailbox) else None,
        unread=asked.get("unread") == "1",
        automatic=asked.get("automatic") == "1",
        offset=offset,
        limit=THREADS_PER_PAGE,
    )
    threads = await runtime.inbox.threads(user_id, query)
    mailboxes = await runtime.mailboxes.list_mailboxes(user_id)
    return render_section(
        request,
        who,
        "inbox",
        threads=threads,
        query=query,
        mailboxes=mailboxes,
        lead_choices=await lead_choices(runtime, user_id),
    )


@router.get("/inbox/{campaign_id}/{record_id}")
async def thread_page(
    campaign_id: str, record_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> HTMLResponse:
    user_id = who.user.user_id
    thread = await runtime.inbox.thread(user_id, campaign_id, record_id)
    return render(
        request,
        "inbox_thread.html",
        who=who,
        section="inbox",
        thread=thread,
        record_id=record_id,
        answer_id=new_object_id(),
        lead_choices=await lead_choices(runtime, user_id),
        notice=request.query_params.get("notice"),
    )


@router.get("/inbox/messages/{message_id}/body.html")
async def reply_frame(
    message_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    """A reply's sanitised HTML, for the thread page's sandboxed frame."""
    message = await runtime.inbox.message(who.user.user_id, message_id)
    headers = {"Content-Security-Policy": REPLY_FRAME_POLICY, "X-Frame-Options": "SAMEORIGIN"}
    return HTMLResponse(message.html or "", headers=headers)


@router.post("/inbox/{campaign_id}/{record_id}/{action}")
async def thread_action(
    campaign_id: str,
    record_id: str,
    action: str,
    request: Request,
    who: PageUserDep,
    runtime: RuntimeDep,
) -> Response:
    """A thread's buttons: answer, its lead status, mark it unread."""
    form = await read_form(request)
    check_csrf(who, form)
    user_id = who.user.user_id
    back = f"/inbox/{campaign_id}/{record_id}"
    try:
        if action == "lead-status":
            person = await runtime.leads.set_status(
                user_id, campaign_id, record_id, form.get("status") or None, source="inbox"
            )
            shown = shown_status(person.lead_status)
            notice = f"lead status: {shown}"
        elif action == "answer":
            answer = await runtime.answers().answer(
                user_id,
                campaign_id,
                record_id,
                form.get("text", ""),
                answer_id=form.get("answer_id") or None,
                track_opens=form.get("track_opens") == "1",
            )
            notice = {
                "sent": "answer sent",
                "uncertain": f"the answer may or may not have left ({answer.error}); "
                "it is not sent again",
            }.get(answer.status or "", f"the answer was not sent: {answer.error}")
        elif action == "unread":
            await runtime.inbox.mark_read(user_id, campaign_id, record_id, read=False)
            return RedirectResponse("/inbox", status_code=303)
        else:
            raise NotFoundError("action", action)
    except MailrampError as error:
        notice = error.message
    return RedirectResponse(f"{back}?{urlencode({'notice': notice})}", status_code=303)
