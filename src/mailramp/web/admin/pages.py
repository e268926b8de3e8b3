"""The Admin page (`/admin`): users (invite, deactivate, reactivate, reset a password, make
or remove an admin), the sending workers and the audit log. Admins only: anyone else is
answered 403. A password set here is shown on the answer to its form only, never in a URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailramp.auth.admin import Actor, AdminResult
from mailramp.errors import MailrampError
from mailramp.web.dashboard import PageUser, PageUserDep, check_csrf, read_form, render_section
from mailramp.web.deps import RuntimeDep

router = APIRouter(include_in_schema=False)

AUDIT_SHOWN = 100


async def page_admin(who: PageUserDep) -> PageUser:
    """The page's user, if an admin (403 otherwise)."""
    Actor.admin(who.user)
    return who


AdminPageDep = Annotated[PageUser, Depends(page_admin)]


async def render_admin(
    request: Request,
    who: PageUser,
    runtime: RuntimeDep,
    *,
    done: AdminResult | None = None,
    message: str | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    actor = Actor.admin(who.user)
    page = render_section(
        request,
        who,
        "admin",
        users=await runtime.admin.list_users(actor),
        workers=await runtime.workers.list(),
        audit=await runtime.admin.audit_log(actor, limit=AUDIT_SHOWN),
        done=done,
        message=message,
        values=values or {},
        errors=errors or {},
        status=status,
    )
    page.headers["Cache-Control"] = "no-store"  # it may show a password, and always users
    return page


@router.get("/admin")
async def admin_page(request: Request, who: AdminPageDep, runtime: RuntimeDep) -> HTMLResponse:
    return await render_admin(request, who, runtime)


@router.post("/admin/users")
async def invite(request: Request, who: AdminPageDep, runtime: RuntimeDep) -> Response:
    form = await read_form(request)
    check_csrf(who, form)
    values = {k: form.get(k, "") for k in ("user_name", "login_id", "email")}
    try:
        result = await runtime.admin.invite(
            Actor.admin(who.user),
            user_name=values["user_name"],
            login_id=values["login_id"],
            email=values["email"] or None,
            admin=form.get("admin") == "on",
        )
    except MailrampError as error:
        field = error.field if error.field in values else "form"
        return await render_admin(
            request,
            who,
            runtime,
            values=values,
            errors={field or "form": error.detail},
            status=error.status_code,
        )
    return await render_admin(
        request, who, runtime, done=result, message=f"invited {result.user.login_id}"
    )


ACTIONS = {
    "deactivate": "deactivated",
    "reactivate": "reactivated",
    "password-reset": "new password for",
    "make-admin": "made an admin:",
    "remove-admin": "no longer an admin:",
}


@router.post("/admin/users/{user_id}/{action}")
async def act(
    user_id: str, action: str, request: Request, who: AdminPageDep, runtime: RuntimeDep
) -> Response:
    check_csrf(who, await read_form(request))
    actor = Actor.admin(who.user)
    admin = runtime.admin
    try:
        if action == "deactivate":
            result = await admin.deactivate(actor, user_id)
        elif action == "reactivate":
            result = await admin.reactivate(actor, user_id)
        elif action == "password-reset":
            result = await admin.reset_password(actor, user_id)
        elif action in ("make-admin", "remove-admin"):
            result = await admin.set_admin(actor, user_id, admin=action == "make-admin")
        else:
            return RedirectResponse("/admin", status_code=303)
    except MailrampError as error:
        return await render_admin(
            request, who, runtime, errors={"form": error.detail}, status=error.status_code
        )
    message = f"{ACTIONS[action]} {result.user.login_id}"
    return await render_admin(request, who, runtime, done=result, message=message)
