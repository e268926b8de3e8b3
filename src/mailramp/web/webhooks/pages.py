"""The webhooks page: your endpoints, each with its buttons and delivery log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailramp.errors import MailrampError
from mailramp.tracking.models import EventType
from mailramp.web.dashboard import PageUser, PageUserDep, check_csrf, read_form, render_section
from mailramp.web.deps import RuntimeDep

router = APIRouter(include_in_schema=False)

LOG_SHOWN = 25  # messages of each endpoint's delivery log on the page


async def _page(
    request: Request,
    who: PageUser,
    runtime: RuntimeDep,
    *,
    new_secret: tuple[str, str] | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    user_id = who.user.user_id
    endpoints = await runtime.webhooks.list_endpoints(user_id)
    logs = {
        e.id: (await runtime.webhooks.messages(user_id, e.id, limit=LOG_SHOWN)) for e in endpoints
    }
    response = render_section(
        request,
        who,
        "webhooks",
        endpoints=endpoints,
        logs=logs,
        kinds=[kind.value for kind in EventType],
        new_secret=new_secret,
        values=values or {},
        errors=errors or {},
        notice=notice,
    )
    response.status_code = status
    return response


@router.get("/webhooks")
async def webhooks_page(request: Request, who: PageUserDep, runtime: RuntimeDep) -> HTMLResponse:
    return await _page(request, who, runtime, notice=request.query_params.get("notice"))


@router.post("/webhooks")
async def add_webhook(request: Request, who: PageUserDep, runtime: RuntimeDep) -> Response:
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    check_csrf(who, fields)
    kinds = [value for value in form.getlist("kinds") if isinstance(value, str)]
    try:
        endpoint, secret = await runtime.webhooks.add_endpoint(
            who.user.user_id,
            fields.get("url", ""),
            kinds=kinds,
            description=fields.get("description", ""),
        )
    except MailrampError as error:
        values = {"url": fields.get("url", ""), "description": fields.get("description", "")}
        errors = {error.field or "url": error.detail}
        return await _page(
            request, who, runtime, values=values, errors=errors, status=error.status_code
        )
    # Shown once, on this response only (no redirect that could put it in a URL).
    return await _page(request, who, runtime, new_secret=(endpoint.id, secret))


@router.post("/webhooks/{endpoint_id}/{action}")
async def endpoint_action(
    endpoint_id: str, action: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    """An endpoint's buttons: test, disable, enable, rotate the secret, delete."""
    check_csrf(who, await read_form(request))
    user_id = who.user.user_id
    service = runtime.webhooks
    try:
        if action == "test":
            attempt = await service.send_test(user_id, endpoint_id)
            answer = f"HTTP {attempt.status_code}" if attempt.status_code else attempt.error
            notice = f"test sent: {answer} in {attempt.latency_ms} ms"
        elif action in ("disable", "enable"):
            await service.update_endpoint(user_id, endpoint_id, enabled=action == "enable")
            notice = f"endpoint {action}d"
        elif action == "rotate":
            secret = await service.rotate_secret(user_id, endpoint_id)
            return await _page(request, who, runtime, new_secret=(endpoint_id, secret))
        elif action == "delete":
            await service.delete_endpoint(user_id, endpoint_id)
            notice = "endpoint removed"
        else:
            return HTMLResponse("Not found", status_code=404)
    except MailrampError as error:
        return await _page(request, who, runtime, notice=error.message, status=error.status_code)
    return RedirectResponse(f"/webhooks?notice={notice.replace(' ', '+')}", status_code=303)


@router.post("/webhook-messages/{message_id}/redeliver")
async def redeliver(
    message_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    check_csrf(who, await read_form(request))
    try:
        await runtime.webhooks.redeliver(who.user.user_id, message_id)
    except MailrampError as error:
        return await _page(request, who, runtime, notice=error.message, status=error.status_code)
    return RedirectResponse("/webhooks?notice=queued+again", status_code=303)
