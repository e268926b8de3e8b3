"""Who is asking: API key (`Authorization: Bearer mr_…`) or session cookie (with CSRF
protection on unsafe methods). Clerk session tokens arrive through the same door next."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response

from mailramp.accounts.models import User
from mailramp.auth.admin import Actor
from mailramp.auth.models import Session
from mailramp.auth.service import API_KEY_PREFIX, NewSession
from mailramp.errors import AuthenticationError, ForbiddenError
from mailramp.runtime import Runtime

SESSION_COOKIE = "mailramp_session"
CLERK_COOKIE = "__session"
CSRF_COOKIE = "mailramp_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Scripts and styles only from this server: no inline code, no CDN. The sign-in page widens
# it for Clerk's front end when that is configured (auth/clerk.py).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def set_session_cookies(response: Response, request: Request, new: NewSession) -> None:
    """The new session's cookies: the token (HttpOnly) and the CSRF token (readable by the
    page's script), both SameSite=Lax, Secure when the public URL is https, for the
    session's lifetime."""
    runtime: Runtime = request.app.state.runtime
    secure = str(runtime.settings.public_base_url).startswith("https://")
    max_age = int((new.session.expires_at - new.session.created_at).total_seconds())
    for name, value, http_only in (
        (SESSION_COOKIE, new.token, True),
        (CSRF_COOKIE, new.csrf_token, False),
    ):
        response.set_cookie(
            name, value, max_age=max_age, httponly=http_only, samesite="lax", secure=secure
        )


def get_runtime(request: Request) -> Runtime:
    """The runtime the app opened at start-up."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@dataclass(frozen=True)
class Caller:
    """The signed-in user, their session when they came with a cookie, and whether they
    came with an API key."""

    user: User
    session: Session | None = None
    api_key: bool = False


async def clerk_user(runtime: Runtime, token: str) -> User:
    if runtime.clerk is None:
        raise AuthenticationError("invalid credentials")
    identity = await runtime.clerk.verify(token)
    user = await runtime.auth.clerk_account(
        identity.clerk_user_id, user_name=identity.name, email=identity.email
    )
    if not user.is_active:
        raise AuthenticationError("invalid credentials")
    return user


def same_origin(request: Request, runtime: Runtime) -> bool:
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    allowed = [runtime.settings.public_base_url]
    allowed += [p.strip() for p in (runtime.settings.clerk_authorized_parties or "").split(",")]
    return any(origin == a or origin.startswith(a + "/") for a in allowed if a)


async def get_caller(request: Request, runtime: RuntimeDep) -> Caller:
    """Authenticate the request or raise 401 (403 for a cookie request without CSRF token)."""
    authorization = request.headers.get("authorization", "")
    if authorization:
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthenticationError("use 'Authorization: Bearer <API key or session token>'")
        if credential.startswith(API_KEY_PREFIX):
            return Caller(await runtime.auth.user_for_api_key(credential), api_key=True)
        return Caller(await clerk_user(runtime, credential))
    cookie = request.cookies.get(SESSION_COOKIE)
    clerk_cookie = request.cookies.get(CLERK_COOKIE)
    if not cookie and clerk_cookie:
        # Clerk's cookie carries no CSRF token of ours: unsafe requests must come from our
        # own origin (or an authorised party's).
        if request.method not in SAFE_METHODS and not same_origin(request, runtime):
            raise ForbiddenError("cross-origin request refused")
        return Caller(await clerk_user(runtime, clerk_cookie))
    if not cookie:
        raise AuthenticationError("not signed in")
    user, session = await runtime.auth.session_user(cookie)
    if request.method not in SAFE_METHODS:
        # Double submit: a cross-site form can send the cookie but cannot read it to copy
        # the token into this header.
        presented = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(presented.encode(), session.csrf_token.encode()):
            raise ForbiddenError(f"missing or wrong {CSRF_HEADER} header")
    return Caller(user, session)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_admin(caller: CallerDep) -> Actor:
    """The caller acting as an admin; 403 for anyone who is not one."""
    return Actor.admin(caller.user)


AdminDep = Annotated[Actor, Depends(get_admin)]
