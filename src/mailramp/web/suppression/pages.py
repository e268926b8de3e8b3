"""The suppression list's forms on the settings page."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from mailramp.errors import NotFoundError
from mailramp.errors import ValidationError as DomainValidationError
from mailramp.web.account.pages import settings_refused
from mailramp.web.dashboard import PageUserDep, check_csrf, read_form
from mailramp.web.deps import RuntimeDep

router = APIRouter(include_in_schema=False)


@router.post("/settings/suppressions")
async def suppress(request: Request, who: PageUserDep, runtime: RuntimeDep) -> Response:
    form = await read_form(request)
    check_csrf(who, form)
    try:
        await runtime.suppression.add(who.user.user_id, form.get("email", ""))
    except DomainValidationError as error:
        return await settings_refused(request, who, runtime, form, "email", error)
    return RedirectResponse("/settings", status_code=303)


@router.post("/settings/suppressions/remove")
async def unsuppress(request: Request, who: PageUserDep, runtime: RuntimeDep) -> Response:
    form = await read_form(request)
    check_csrf(who, form)
    with contextlib.suppress(NotFoundError):
        await runtime.suppression.remove(who.user.user_id, form.get("email", ""))
    return RedirectResponse("/settings", status_code=303)
