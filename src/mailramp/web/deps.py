"""Who is asking: API key (`Authorization: Bearer mr_…`) or session cookie (with CSRF
protection on unsafe methods). Clerk session tokens arrive through the same door next."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from mailramp.accounts.models import User
from mailramp.auth.models import Session
from mailramp.errors import AuthenticationError, ForbiddenError
from mailramp.runtime import Runtime

SESSION_COOKIE = "mailramp_session"
CSRF_COOKIE = "mailramp_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_runtime(request: Request) -> Runtime:
    """The runtime the app opened at start-up."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@dataclass(frozen=True)
class Caller:
    """The signed-in user, and their session when they came with a cookie."""

    user: User
    session: Session | None = None


async def get_caller(request: Request, runtime: RuntimeDep) -> Caller:
    """Authenticate the request or raise 401 (403 for a cookie request without CSRF token)."""
    authorization = request.headers.get("authorization", "")
    if authorization:
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise AuthenticationError("use 'Authorization: Bearer <API key>'")
        return Caller(await runtime.auth.user_for_api_key(credential.strip()))
    cookie = request.cookies.get(SESSION_COOKIE)
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
