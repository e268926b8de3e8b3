"""Signing in and out, the account and its API keys, over JSON."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, SecretStr

from mailramp.accounts.models import UserFields
from mailramp.accounts.schemas import LoginId, Password
from mailramp.auth.models import ApiKeyFields
from mailramp.auth.service import NewSession
from mailramp.kit.types import EmailAddress, Name
from mailramp.web.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    CallerDep,
    RuntimeDep,
    set_session_cookies,
)
from mailramp.web.responses import Public

router = APIRouter(prefix="/api/v1")


class SignUp(BaseModel):
    user_name: Name
    login_id: LoginId
    password: Password
    email: EmailAddress | None = None


class LogIn(BaseModel):
    login_id: str
    password: SecretStr


class PasswordChange(BaseModel):
    current_password: SecretStr
    new_password: Password


class UserPublic(UserFields, Public):
    """A user as the API shows them: never the password hash."""


class SessionStarted(Public):
    """A new session: its cookie is set; `csrf_token` goes in the X-CSRF-Token header of
    cookie-authenticated requests that change something."""

    user: UserPublic
    csrf_token: str


class PasswordChanged(Public):
    """What changing the password ended."""

    ended_sessions: int
    revoked_api_keys: int


class ApiKeyPublic(ApiKeyFields, Public):
    """An API key as the API shows it: its name and prefix, never the key or its hash."""


class NewApiKeyPublic(ApiKeyPublic):
    """A key just created: `key` is shown this once."""

    key: str


def _start_session(request: Request, response: Response, new: NewSession) -> SessionStarted:
    set_session_cookies(response, request, new)
    return SessionStarted(user=UserPublic.of(new.user), csrf_token=new.csrf_token)


@router.post("/auth/signup", status_code=201, tags=["sign-in"])
async def sign_up(
    body: SignUp, request: Request, response: Response, runtime: RuntimeDep
) -> SessionStarted:
    """Create a local account and sign in (the session cookie is set)."""
    new = await runtime.auth.sign_up(
        user_name=body.user_name,
        login_id=body.login_id,
        password=body.password.get_secret_value(),
        email=body.email,
        user_agent=request.headers.get("user-agent"),
    )
    return _start_session(request, response, new)


@router.post("/auth/login", tags=["sign-in"])
async def log_in(
    body: LogIn, request: Request, response: Response, runtime: RuntimeDep
) -> SessionStarted:
    """Sign in with login id and password (the session cookie is set)."""
    new = await runtime.auth.log_in(
        body.login_id,
        body.password.get_secret_value(),
        user_agent=request.headers.get("user-agent"),
        client_address=request.client.host if request.client else None,
    )
    return _start_session(request, response, new)


@router.post("/auth/logout", status_code=204, tags=["sign-in"])
async def log_out(caller: CallerDep, response: Response, runtime: RuntimeDep) -> Response:
    """End this session."""
    if caller.session is not None:
        await runtime.auth.log_out(caller.session)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


@router.post("/auth/password", tags=["sign-in"])
async def change_password(
    body: PasswordChange, caller: CallerDep, runtime: RuntimeDep
) -> PasswordChanged:
    """Change the password; every other session ends and every API key is revoked."""
    changed = await runtime.auth.change_password(
        caller.user,
        caller.session,
        current=body.current_password.get_secret_value(),
        new=body.new_password.get_secret_value(),
    )
    return PasswordChanged(
        ended_sessions=changed.sessions_ended, revoked_api_keys=changed.api_keys_revoked
    )


@router.get("/me", tags=["account"])
async def me(caller: CallerDep) -> UserPublic:
    """The signed-in user."""
    return UserPublic.of(caller.user)


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    password: SecretStr | None = Field(
        default=None, description="The account's password; required when you call with an API key."
    )


@router.post("/api-keys", status_code=201, tags=["account"])
async def create_api_key(
    body: ApiKeyCreate, caller: CallerDep, runtime: RuntimeDep
) -> NewApiKeyPublic:
    """A new API key; `key` is shown this once and stored only as a hash. Called with an
    API key, it needs the account's `password` too."""
    confirm = None
    if caller.api_key:
        confirm = body.password.get_secret_value() if body.password else ""
    key, secret = await runtime.auth.create_api_key(
        caller.user.user_id, name=body.name, confirm_password=confirm
    )
    return NewApiKeyPublic.model_validate(
        {**ApiKeyPublic.of(key).model_dump(by_alias=True), "key": secret}
    )


@router.get("/api-keys", tags=["account"])
async def list_api_keys(caller: CallerDep, runtime: RuntimeDep) -> list[ApiKeyPublic]:
    """Your keys (prefixes only)."""
    return [ApiKeyPublic.of(key) for key in await runtime.auth.list_api_keys(caller.user.user_id)]


@router.delete("/api-keys/{key_id}", status_code=204, tags=["account"])
async def revoke_api_key(key_id: str, caller: CallerDep, runtime: RuntimeDep) -> Response:
    """Revoke a key at once."""
    await runtime.auth.revoke_api_key(caller.user.user_id, key_id)
    return Response(status_code=204)
