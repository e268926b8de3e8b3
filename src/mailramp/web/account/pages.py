"""Sign-in, sign-up and the settings page (API keys; the suppression list is shown there
too, its forms are in `web/suppression/pages.py`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from mailramp.errors import (
    AuthenticationError,
    BusyError,
    ConflictError,
    ForbiddenError,
    MailrampError,
    TooManyAttemptsError,
)
from mailramp.errors import ValidationError as DomainValidationError
from mailramp.runtime import Runtime
from mailramp.web.dashboard import (
    PageUser,
    PageUserDep,
    check_csrf,
    form_errors,
    read_form,
    render,
    render_section,
)
from mailramp.web.deps import (
    CONTENT_SECURITY_POLICY,
    CSRF_COOKIE,
    SESSION_COOKIE,
    RuntimeDep,
    clerk_user,
    same_origin,
    set_session_cookies,
)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request) -> Response:
    """The campaigns page, or sign-in."""
    target = "/campaigns" if request.cookies.get(SESSION_COOKIE) else "/signin"
    return RedirectResponse(target, status_code=303)


def _signin_form(
    request: Request,
    runtime: Runtime,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> HTMLResponse:
    front = runtime.clerk_frontend
    response = render(
        request,
        "signin.html",
        mode="signin",
        values=values,
        errors=errors,
        status=status,
        signup_open=runtime.settings.signup_open,
        clerk=front,
    )
    if front is not None:
        # Only this page runs Clerk's components; every other page keeps the strict policy.
        policy = front.content_security_policy(CONTENT_SECURITY_POLICY)
        response.headers["Content-Security-Policy"] = policy
    return response


@router.get("/signin")
async def signin_page(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    return _signin_form(request, runtime, values={}, errors={})


@router.post("/signin/clerk")
async def signin_with_clerk(request: Request, runtime: RuntimeDep) -> Response:
    """Trade a Clerk session token (Authorization: Bearer, sent by /static/clerk.js) for a
    dashboard session. A bearer header cannot be attached by a cross-site form, and the
    origin is checked as well."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if runtime.clerk is None:
        raise AuthenticationError("Clerk sign-in is not configured on this server")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("send the Clerk session token as 'Authorization: Bearer …'")
    if not same_origin(request, runtime):
        raise ForbiddenError("cross-origin request refused")
    user = await clerk_user(runtime, token.strip())
    await runtime.accounts.record_login(user.user_id)
    new = await runtime.auth.start_session(user, request.headers.get("user-agent"))
    response = JSONResponse({"redirect": "/campaigns"})
    set_session_cookies(response, request, new)
    return response


@router.get("/signup")
async def signup_page(request: Request) -> HTMLResponse:
    return render(request, "signin.html", mode="signup", values={}, errors={})


@router.post("/signin")
async def signin(request: Request, runtime: RuntimeDep) -> Response:
    form = await read_form(request)
    values = {"login_id": form.get("login_id", "")}
    try:
        new = await runtime.auth.log_in(
            form.get("login_id", ""),
            form.get("password", ""),
            user_agent=request.headers.get("user-agent"),
            client_address=request.client.host if request.client else None,
        )
    except (AuthenticationError, TooManyAttemptsError, BusyError) as error:
        return _signin_form(
            request,
            runtime,
            values=values,
            errors={"form": error.message},
            status=error.status_code,
        )
    response = RedirectResponse("/campaigns", status_code=303)
    set_session_cookies(response, request, new)
    return response


@router.post("/signup")
async def signup(request: Request, runtime: RuntimeDep) -> Response:
    form = await read_form(request)
    values = {k: form.get(k, "") for k in ("user_name", "login_id")}
    try:
        new = await runtime.auth.sign_up(
            user_name=form.get("user_name", ""),
            login_id=form.get("login_id", ""),
            password=form.get("password", ""),
            user_agent=request.headers.get("user-agent"),
        )
    except (DomainValidationError, ConflictError, ForbiddenError) as error:
        return render(
            request,
            "signin.html",
            mode="signup",
            values=values,
            errors=form_errors(error, ("user_name", "login_id", "password")),
            status=error.status_code,
        )
    response = RedirectResponse("/mailboxes", status_code=303)
    set_session_cookies(response, request, new)
    return response


@router.post("/signout")
async def signout(request: Request, who: PageUserDep, runtime: RuntimeDep) -> Response:
    check_csrf(who, await read_form(request))
    await runtime.auth.log_out(who.session)
    # With Clerk, its own session ends too (clerk.js signs out when it sees this flag).
    target = "/signin?signed_out=1" if runtime.clerk_frontend else "/signin"
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


async def render_settings(
    request: Request,
    who: PageUser,
    runtime: RuntimeDep,
    *,
    new_key: str | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    suppressions = await runtime.suppression.list_suppressions(who.user.user_id, limit=500)
    unmatched = await runtime.tracking.list_unmatched(who.user.user_id, limit=100)
    keys = await runtime.auth.list_api_keys(who.user.user_id)
    return render_section(
        request,
        who,
        "settings",
        suppressions=suppressions,
        unmatched=unmatched,
        keys=keys,
        new_key=new_key,
        values=values or {},
        errors=errors or {},
        status=status,
    )


async def settings_refused(
    request: Request,
    who: PageUser,
    runtime: RuntimeDep,
    form: dict[str, str],
    field: str,
    error: MailrampError,
) -> HTMLResponse:
    """The settings page again after one of its forms was refused: what was typed in
    `field` kept, the error beside it."""
    values = {field: form.get(field, "")}
    errors = {error.field or field: error.detail}
    return await render_settings(
        request, who, runtime, values=values, errors=errors, status=error.status_code
    )


@router.get("/settings")
async def settings_page(request: Request, who: PageUserDep, runtime: RuntimeDep) -> HTMLResponse:
    return await render_settings(request, who, runtime)


@router.post("/settings/api-keys")
async def create_key(request: Request, who: PageUserDep, runtime: RuntimeDep) -> Response:
    form = await read_form(request)
    check_csrf(who, form)
    try:
        _, secret = await runtime.auth.create_api_key(who.user.user_id, name=form.get("name", ""))
    except MailrampError as error:
        return await settings_refused(request, who, runtime, form, "name", error)
    # Shown once, on this response only (no redirect that could put it in a URL).
    return await render_settings(request, who, runtime, new_key=secret)


@router.post("/settings/api-keys/{key_id}/revoke")
async def revoke_key(
    key_id: str, request: Request, who: PageUserDep, runtime: RuntimeDep
) -> Response:
    check_csrf(who, await read_form(request))
    await runtime.auth.revoke_api_key(who.user.user_id, key_id)
    return RedirectResponse("/settings", status_code=303)
