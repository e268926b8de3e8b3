"""The admin API (`/api/v1/admin/…`): users, the audit log and the workers, for admins only
(anyone else is answered 403; auth/admin.py holds the rules)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel

from mailramp.accounts.schemas import LoginId
from mailramp.auth.admin import AdminResult
from mailramp.auth.models import AuditAction
from mailramp.kit.types import EmailAddress, Name
from mailramp.sending.heartbeats import WorkerState
from mailramp.web.account.api import UserPublic
from mailramp.web.deps import AdminDep, RuntimeDep
from mailramp.web.responses import PagingDep, Public

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


class Invite(BaseModel):
    user_name: Name
    login_id: LoginId
    email: EmailAddress | None = None
    admin: bool = False


class AdminChangePublic(Public):
    """A user after an admin's action: with the sessions and keys it ended, and the password
    it set, shown this once (hand it to the person; it is stored only as a hash)."""

    user: UserPublic
    ended_sessions: int | None = None
    revoked_api_keys: int | None = None
    password: str | None = None


class AuditEntryPublic(Public):
    """One administrative action: when, who (`actor`; `actor_id` for an admin, null for the
    operator at the command line), what, to whom."""

    id: str
    at: datetime
    actor_id: str | None
    actor: str
    action: AuditAction
    target_id: str | None
    target: str
    detail: str | None


class WorkerPublic(Public):
    """A sending worker's last heartbeat and what it is now: alive, stopped (it said
    goodbye) or gone (silent for three of its leases)."""

    worker_id: str
    host: str
    pid: int
    version: str
    lease_seconds: float
    started_at: datetime
    beat_at: datetime
    last_pass_at: datetime | None
    held: int
    stopped_at: datetime | None
    state: WorkerState


def _change(result: AdminResult, response: Response | None = None) -> AdminChangePublic:
    """The answer; one carrying a password is never stored by a cache on the way."""
    if result.password is not None and response is not None:
        response.headers["Cache-Control"] = "no-store"
    ended = result.ended
    return AdminChangePublic(
        user=UserPublic.of(result.user),
        ended_sessions=ended.sessions_ended if ended else None,
        revoked_api_keys=ended.api_keys_revoked if ended else None,
        password=result.password,
    )


@router.get("/users")
async def list_users(actor: AdminDep, runtime: RuntimeDep) -> list[UserPublic]:
    """Every user of the instance, oldest first."""
    return [UserPublic.of(user) for user in await runtime.admin.list_users(actor)]


@router.post("/users", status_code=201)
async def invite_user(
    body: Invite, actor: AdminDep, runtime: RuntimeDep, response: Response
) -> AdminChangePublic:
    """A new account, also while sign-up is closed, with a generated `password` shown this
    once."""
    result = await runtime.admin.invite(
        actor, user_name=body.user_name, login_id=body.login_id, email=body.email, admin=body.admin
    )
    return _change(result, response)


@router.post("/users/{user_id}/deactivate")
async def deactivate_user(user_id: str, actor: AdminDep, runtime: RuntimeDep) -> AdminChangePublic:
    """Stop the user at once: their sessions end, their API keys are revoked; their data
    stays. Not one's own account, nor the last active admin (409)."""
    return _change(await runtime.admin.deactivate(actor, user_id))


@router.post("/users/{user_id}/reactivate")
async def reactivate_user(user_id: str, actor: AdminDep, runtime: RuntimeDep) -> AdminChangePublic:
    """Let a deactivated user sign in again."""
    return _change(await runtime.admin.reactivate(actor, user_id))


@router.post("/users/{user_id}/password-reset")
async def reset_user_password(
    user_id: str, actor: AdminDep, runtime: RuntimeDep, response: Response
) -> AdminChangePublic:
    """A new generated `password`, shown this once; the user's sessions end and their API
    keys are revoked. Not one's own account (change it with /auth/password)."""
    return _change(await runtime.admin.reset_password(actor, user_id), response)


@router.put("/users/{user_id}/admin")
async def make_admin(user_id: str, actor: AdminDep, runtime: RuntimeDep) -> AdminChangePublic:
    """Make the user an admin."""
    return _change(await runtime.admin.set_admin(actor, user_id, admin=True))


@router.delete("/users/{user_id}/admin")
async def remove_admin(user_id: str, actor: AdminDep, runtime: RuntimeDep) -> AdminChangePublic:
    """Make an admin an ordinary user again: not oneself, nor the last active admin (409)."""
    return _change(await runtime.admin.set_admin(actor, user_id, admin=False))


@router.get("/audit")
async def audit_log(
    actor: AdminDep, runtime: RuntimeDep, paging: PagingDep
) -> list[AuditEntryPublic]:
    """What admins and the operator did to accounts, newest first."""
    entries = await runtime.admin.audit_log(actor, offset=paging.offset, limit=paging.limit)
    return [AuditEntryPublic.of(entry) for entry in entries]


@router.get("/workers")
async def list_workers(actor: AdminDep, runtime: RuntimeDep) -> list[WorkerPublic]:
    """The sending workers heard from lately (as `mailramp worker list`)."""
    del actor
    return [
        WorkerPublic.model_validate({**status.heartbeat.model_dump(), "state": status.state})
        for status in await runtime.workers.list()
    ]
