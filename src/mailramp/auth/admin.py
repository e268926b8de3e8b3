"""Administering an instance: its users (invite, deactivate, reactivate, reset a password,
make or remove an admin), their API keys, and the audit log every one of those actions is
written to.

Two kinds of caller act here. An admin, signed in to the API or the dashboard, acts as
`Actor.admin(user)`, which refuses anyone not an active admin. The operator at the command
line acts as `Actor.operator(...)`: whoever can run `mailramp` with the instance's database
URL and keys already holds every account, so the shell is not asked for an admin; it is
named in the audit log instead.

The rules that keep an instance administrable: nobody deactivates, resets or removes the
admin flag of their own account here (the account page changes one's own password), and the
last active admin is never deactivated or unmade (checked, then written: two admins unmaking
each other in the same instant could both pass; the shell's `mailramp user make-admin`
recovers). Each action is recorded after it succeeded: an action the database failed
midway answers an error and is recorded when it is done again.

A deactivation takes effect at once: every request checks that its user is active, and
the user's sessions and API keys are ended as well, so reactivating does not bring back a
credential that may have leaked meanwhile (one stored while the deactivation ran is refused
as it is made: AuthService._still_active).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Protocol

from mailramp.accounts.models import User
from mailramp.accounts.repository import UserRepository
from mailramp.accounts.service import AccountService
from mailramp.auth.models import ApiKey, AuditAction, AuditEntry
from mailramp.auth.repository import AuditRepository, AuthRepository
from mailramp.auth.service import AuthService, EndedAccess
from mailramp.errors import ConflictError, ForbiddenError, NotFoundError
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.ids import new_object_id
from mailramp.kit.validation import object_id_arg

log = logging.getLogger(__name__)

GENERATED_PASSWORD_BYTES = 15
"""A generated password: 120 random bits, 20 URL-safe characters (shown once)."""


def generated_password() -> str:
    """A password for an invited user or a reset, to hand over once."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


@dataclass(frozen=True)
class Actor:
    """Who performs an administrative action."""

    name: str
    user: User | None = None

    @classmethod
    def admin(cls, user: User) -> Actor:
        """A signed-in user acting as admin; ForbiddenError unless they are an active one."""
        if not (user.is_admin and user.is_active):
            raise ForbiddenError("only an admin of this instance can do this")
        return cls(name=user.login_id, user=user)

    @classmethod
    def operator(cls, who: str) -> Actor:
        """The operator at the command line (`who`: the system user and host)."""
        return cls(name=f"operator {who} (command line)")

    @property
    def user_id(self) -> str | None:
        return self.user.user_id if self.user else None


@dataclass(frozen=True)
class AdminResult:
    """A user after an administrative action, with what it ended and the password it set
    (shown to the admin this once; never stored in clear, never logged)."""

    user: User
    ended: EndedAccess | None = None
    password: str | None = None


class AdminStore(AuthRepository, AuditRepository, UserRepository, Protocol):
    """What AdminService reads and writes."""


class AdminService:
    """Users, their keys and the audit log, for admins and the operator."""

    def __init__(
        self,
        store: AdminStore,
        accounts: AccountService,
        auth: AuthService,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._auth = auth
        self._clock = clock

    # -- users ------------------------------------------------------------------------

    async def list_users(self, actor: Actor) -> list[User]:
        """Every user of the instance, oldest first."""
        del actor  # an Actor exists only once checked (Actor.admin) or named (operator)
        return await self._store.list_users()

    async def invite(
        self,
        actor: Actor,
        *,
        user_name: str,
        login_id: str,
        email: str | None = None,
        admin: bool = False,
        password: str | None = None,
    ) -> AdminResult:
        """A new account (also while sign-up is closed). Without `password` (the operator
        may type one), one is generated for the admin to hand over: the result carries it."""
        chosen = password or generated_password()
        user = await self._accounts.create_user(
            admin=admin, user_name=user_name, login_id=login_id, email=email, password=chosen
        )
        detail = "as admin" if user.is_admin else None
        await self._audit(actor, AuditAction.INVITE, user, detail)
        return AdminResult(user=user, password=None if password else chosen)

    async def deactivate(self, actor: Actor, user_id: str) -> AdminResult:
        """Stop the user at once: refused from their next request on, their sessions ended
        and their API keys revoked. Their data stays; their campaigns are left as they are."""
        user = await self._other_user(actor, user_id, "deactivate")
        if user.is_admin and user.is_active:
            await self._keep_an_admin(user, "deactivate")
        changed = await self._accounts.deactivate_user(user.user_id)
        ended = await self._end_access(user)
        detail = (
            f"{ended.sessions_ended} session(s) ended, {ended.api_keys_revoked} API key(s) revoked"
        )
        await self._audit(actor, AuditAction.DEACTIVATE, changed, detail)
        return AdminResult(user=changed, ended=ended)

    async def reactivate(self, actor: Actor, user_id: str) -> AdminResult:
        """Let a deactivated user sign in again (with new sessions and keys)."""
        user = await self._user(user_id)
        changed = await self._accounts.reactivate_user(user.user_id)
        await self._audit(actor, AuditAction.REACTIVATE, changed, None)
        return AdminResult(user=changed)

    async def reset_password(self, actor: Actor, user_id: str) -> AdminResult:
        """A new generated password, shown once; the user's sessions end and their API keys
        are revoked, as after a change of password."""
        user = await self._other_user(actor, user_id, "reset the password of")
        if user.clerk_user_id is not None and not user.has_password:
            raise ConflictError(
                f"{user.login_id} signs in with Clerk and has no password here to reset; "
                "their password is Clerk's",
                field="user_id",
            )
        password = generated_password()
        changed = await self._accounts.update_user(user.user_id, password=password)
        ended = await self._end_access(user)
        detail = (
            f"{ended.sessions_ended} session(s) ended, {ended.api_keys_revoked} API key(s) revoked"
        )
        await self._audit(actor, AuditAction.RESET_PASSWORD, changed, detail)
        return AdminResult(user=changed, ended=ended, password=password)

    async def set_admin(self, actor: Actor, user_id: str, *, admin: bool) -> AdminResult:
        """Make the user an admin, or an ordinary user again."""
        user = await self._user(user_id)
        if not admin:
            user = await self._other_user(actor, user_id, "remove the admin flag of")
            if user.is_admin and user.is_active:
                await self._keep_an_admin(user, "remove the admin flag of")
        changed = await self._accounts.set_admin(user.user_id, admin=admin)
        action = AuditAction.MAKE_ADMIN if admin else AuditAction.REMOVE_ADMIN
        await self._audit(actor, action, changed, None)
        return AdminResult(user=changed)

    # -- API keys ---------------------------------------------------------------------

    async def create_api_key(self, actor: Actor, user_id: str, *, name: str) -> tuple[ApiKey, str]:
        """A key for the user, shown this once."""
        user = await self._user(user_id)
        key, secret = await self._auth.create_api_key(user.user_id, name=name)
        await self._audit(actor, AuditAction.CREATE_KEY, user, f"{key.name} ({key.prefix})")
        return key, secret

    async def list_api_keys(self, actor: Actor, user_id: str) -> list[ApiKey]:
        """The user's keys (prefixes only), revoked ones included."""
        del actor
        return await self._auth.list_api_keys((await self._user(user_id)).user_id)

    async def revoke_api_key(self, actor: Actor, user_id: str, key: str) -> ApiKey:
        """Revoke one of the user's keys, named by its id or its prefix (`mr_AbCd1234`)."""
        user = await self._user(user_id)
        keys = await self._auth.list_api_keys(user.user_id)
        chosen = next((k for k in keys if key in (k.id, k.prefix) and k.revoked_at is None), None)
        if chosen is None:
            raise NotFoundError("live api key of this user", key)
        await self._auth.revoke_api_key(user.user_id, chosen.id)
        await self._audit(actor, AuditAction.REVOKE_KEY, user, f"{chosen.name} ({chosen.prefix})")
        return chosen

    # -- the audit log ----------------------------------------------------------------

    async def audit_log(
        self, actor: Actor, *, offset: int = 0, limit: int = 100
    ) -> list[AuditEntry]:
        """The administrative actions, newest first."""
        del actor
        return await self._store.list_audit_entries(offset=offset, limit=limit)

    # -- rules --------------------------------------------------------------------------

    async def _user(self, user_id: str) -> User:
        return await self._accounts.get_user(object_id_arg(user_id, field="user_id"))

    async def _other_user(self, actor: Actor, user_id: str, what: str) -> User:
        user = await self._user(user_id)
        if actor.user_id == user.user_id:
            raise ConflictError(
                f"an admin cannot {what} their own account here; ask another admin, or use "
                "the command line",
                field="user_id",
            )
        return user

    async def _keep_an_admin(self, user: User, what: str) -> None:
        admins = [u for u in await self._store.list_users() if u.is_admin and u.is_active]
        if [u.user_id for u in admins] == [user.user_id]:
            raise ConflictError(
                f"cannot {what} {user.login_id}: the instance's only active admin; make "
                "another admin first",
                field="user_id",
            )

    async def _end_access(self, user: User) -> EndedAccess:
        return await self._auth.end_access(user.user_id)

    async def _audit(
        self, actor: Actor, action: AuditAction, target: User, detail: str | None
    ) -> None:
        entry = AuditEntry(
            id=new_object_id(),
            at=self._clock(),
            actor_id=actor.user_id,
            actor=actor.name,
            action=action,
            target_id=target.user_id,
            target=target.login_id,
            detail=detail,
        )
        await self._store.insert_audit_entry(entry)
        log.info(
            "audit: %s %s %s%s",
            actor.name,
            action.value,
            target.login_id,
            f" ({detail})" if detail else "",
        )
