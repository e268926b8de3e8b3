"""Local accounts, sessions and API keys.

Secrets handed out (session cookies, API keys) are random 256-bit values; only their
SHA-256 is stored, so a database leak does not let anyone sign in. Failed logins are
throttled per account with one generic error, whether or not the account exists.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from mailramp.accounts.models import User
from mailramp.accounts.repository import UserRepository
from mailramp.accounts.service import AccountService
from mailramp.auth.models import WEBHOOK_MEMORY, ApiKey, Session
from mailramp.auth.repository import AuthRepository
from mailramp.auth.throttle import AddressThrottle, account_locked_until
from mailramp.errors import (
    AuthenticationError,
    ConflictError,
    DuplicateError,
    ForbiddenError,
    NotFoundError,
    TooManyAttemptsError,
    ValidationError,
)
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.ids import new_object_id
from mailramp.kit.validation import object_id_arg

API_KEY_PREFIX = "mr_"
SESSION_DAYS = 14
INVALID_LOGIN = "invalid login or password"
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""How exactly an API key's `last_used_at` follows its use."""
RESERVE_TRIES = 10


def digest(secret: str) -> str:
    """SHA-256 of a handed-out secret (high-entropy, so no slow hash is needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class EndedAccess:
    """What a password change, a reset or a deactivation ended."""

    sessions_ended: int
    api_keys_revoked: int

    def __str__(self) -> str:
        return f"{self.sessions_ended} session(s) ended, {self.api_keys_revoked} API key(s) revoked"


@dataclass(frozen=True)
class NewSession:
    """A session just created: `token` goes in the cookie, `csrf_token` in a readable one."""

    user: User
    session: Session
    token: str
    csrf_token: str


class AuthStore(AuthRepository, UserRepository, Protocol):
    """What AuthService reads and writes."""


class AuthService:
    """Signs people and scripts in."""

    def __init__(
        self,
        store: AuthStore,
        accounts: AccountService,
        *,
        clock: Clock = utc_now,
        signup_open: bool = True,
        addresses: AddressThrottle | None = None,
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._clock = clock
        self._signup_open = signup_open
        self._addresses = addresses or AddressThrottle()

    # -- API keys ---------------------------------------------------------------------

    async def create_api_key(
        self, user_id: str, *, name: str, confirm_password: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key for the user; the full key is returned this once, never again. With
        `confirm_password` (a caller signed in with an API key), the user's password must
        match: a leaked key cannot mint keys that outlive its own revocation."""
        if confirm_password is not None:
            user = await self._store.get_user(object_id_arg(user_id, field="user_id"))
            if user is None or not await self._password_is(user, confirm_password):
                raise ForbiddenError(
                    "password: an API key can make another key only with the account's "
                    "password; send the right `password`, or make keys in the dashboard"
                )
        name = name.strip()
        if not name or len(name) > 100:
            raise ValidationError("name", "must be 1 to 100 characters", value=name)
        secret = secrets.token_urlsafe(32)
        prefix = secret[:8]
        full = f"{API_KEY_PREFIX}{prefix}_{secret[8:]}"
        key = ApiKey(
            id=new_object_id(),
            user_id=object_id_arg(user_id, field="user_id"),
            name=name,
            prefix=f"{API_KEY_PREFIX}{prefix}",
            key_hash=digest(full),
            created_at=self._clock(),
        )
        stored = await self._store.insert_api_key(key)
        if not await self._still_active(key.user_id):
            await self._store.revoke_api_key(key.user_id, key.id, now=self._clock())
            raise AuthenticationError("not signed in")
        return stored, full

    async def list_api_keys(self, user_id: str) -> list[ApiKey]:
        """The user's keys (prefixes only)."""
        return await self._store.list_api_keys(object_id_arg(user_id, field="user_id"))

    async def revoke_api_key(self, user_id: str, key_id: str) -> None:
        """Revoke one of the user's keys."""
        if not await self._store.revoke_api_key(
            object_id_arg(user_id, field="user_id"),
            object_id_arg(key_id, field="key_id"),
            now=self._clock(),
        ):
            raise NotFoundError("api key", key_id)

    async def user_for_api_key(self, presented: str) -> User:
        """The active user an API key belongs to."""
        if not presented.startswith(API_KEY_PREFIX):
            raise AuthenticationError("invalid API key")
        key = await self._store.find_api_key(digest(presented))
        user = await self._store.get_user(key.user_id) if key else None
        if key is None or user is None or not user.is_active:
            raise AuthenticationError("invalid API key")
        now = self._clock()
        # A write at most once per LAST_USED_RESOLUTION: requests with a key stay reads.
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
            await self._store.mark_api_key_used(key.id, now=now)
        return user

    # -- local accounts ---------------------------------------------------------------

    async def sign_up(
        self,
        *,
        user_name: str,
        login_id: str,
        password: str,
        email: str | None = None,
        user_agent: str | None = None,
    ) -> NewSession:
        """Create a local account and sign it in (unless the operator closed sign-up)."""
        if not self._signup_open:
            raise ForbiddenError("sign-up is closed on this server; ask its operator")
        if not password:
            raise ValidationError("password", "is required")
        try:
            user = await self._accounts.create_user(
                user_name=user_name, login_id=login_id, email=email, password=password
            )
        except DuplicateError as taken:
            if taken.field != "email":
                raise
            # Not "a user with email … exists": the answer does not repeat whose address it
            # is, and an address typed here is never proven (a Clerk sign-in that proves it
            # takes it back: AccountService.get_or_create_clerk_user).
            raise ConflictError(
                "this address cannot be used for a new account; sign in, or leave the email empty",
                field="email",
            ) from None
        return await self.start_session(user, user_agent)

    async def log_in(
        self,
        login_id: str,
        password: str,
        *,
        user_agent: str | None = None,
        client_address: str | None = None,
    ) -> NewSession:
        """Check a password. Every refusal — unknown account, locked account, wrong password
        — takes one password check and has one message; attempts are counted before the
        check (auth/throttle.py), per account and per client address."""
        now = self._clock()
        if not self._addresses.reserve(client_address, now):
            minutes = int(self._addresses.window.total_seconds() // 60)
            raise TooManyAttemptsError(
                f"too many sign-in attempts from your address; try again in {minutes} minutes",
                retry_after_seconds=int(self._addresses.window.total_seconds()),
            )
        user = await self._store.get_user_by_login_id(login_id.strip().lower())
        if user is None or not user.is_active:
            await self._accounts.spend_password_check(password)
            raise AuthenticationError(INVALID_LOGIN)
        if not await self._password_is(user, password):
            raise AuthenticationError(INVALID_LOGIN)
        self._addresses.forgive(client_address)
        await self._accounts.record_login(user.user_id)
        return await self.start_session(user, user_agent)

    async def _password_is(self, user: User, password: str) -> bool:
        """One throttled password check on an account: the attempt is reserved first; a
        locked account or one without a password costs the same check and says False."""
        if user.password is None or not await self._reserve_attempt(user, self._clock()):
            await self._accounts.spend_password_check(password)
            return False
        if not await self._accounts.password_matches(user, password):
            return False  # the reserved attempt stays counted
        await self._store.reset_login_failures(user.id)
        return True

    async def _reserve_attempt(self, user: User, now: datetime) -> bool:
        """Take one attempt on the account unless it is locked. Attempts racing on the same
        count retry on the count that won; one that keeps losing is refused."""
        seen = user
        for _ in range(RESERVE_TRIES):
            locked_until = account_locked_until(seen.failed_logins, seen.last_failed_login_at)
            if locked_until is not None and now < locked_until:
                return False
            if await self._store.reserve_login_attempt(
                seen.id, seen_failures=seen.failed_logins, now=now
            ):
                return True
            fresh = await self._store.get_user(seen.id)
            if fresh is None:
                return False
            seen = fresh
        return False

    async def clerk_account(
        self, clerk_user_id: str, *, user_name: str | None, email: str | None
    ) -> User:
        """The user a Clerk identity is here (from a verified session token or webhook).
        While sign-up is open, one is created on the spot (schema migration note 3); while it
        is closed, only a Clerk user who already has an account gets one — by no door."""
        if not self._signup_open:
            existing = await self._store.get_user_by_clerk_id(clerk_user_id)
            if existing is None:
                raise ForbiddenError(
                    "sign-up is closed on this server; ask its operator for an account"
                )
            return existing
        return await self._accounts.get_or_create_clerk_user(
            clerk_user_id, user_name=user_name, email=email
        )

    async def first_delivery(self, delivery_id: str) -> bool:
        """Whether this webhook delivery (its Svix message id) is seen for the first time;
        it is remembered for WEBHOOK_MEMORY."""
        now = self._clock()
        return await self._store.remember_webhook_delivery(
            delivery_id, now=now, forget_before=now - WEBHOOK_MEMORY
        )

    async def delivery_failed(self, delivery_id: str) -> None:
        """Processing the delivery failed: its retry must not count as a replay."""
        await self._store.forget_webhook_delivery(delivery_id)

    async def start_session(self, user: User, user_agent: str | None) -> NewSession:
        """A new dashboard session (cookie token and CSRF token) for an authenticated user."""
        token = secrets.token_urlsafe(32)
        csrf_token = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(
            id=new_object_id(),
            user_id=user.id,
            token_hash=digest(token),
            csrf_token=csrf_token,
            created_at=now,
            expires_at=now + timedelta(days=SESSION_DAYS),
            user_agent=(user_agent or "")[:300] or None,
        )
        await self._store.insert_session(session)
        if not await self._still_active(user.id):
            await self._store.revoke_session(user.id, session.id, now=now)
            raise AuthenticationError(INVALID_LOGIN)
        return NewSession(user=user, session=session, token=token, csrf_token=csrf_token)

    async def session_user(self, token: str) -> tuple[User, Session]:
        """The user of a live session cookie."""
        session = await self._store.find_session(digest(token), now=self._clock())
        user = await self._store.get_user(session.user_id) if session else None
        if session is None or user is None or not user.is_active:
            raise AuthenticationError("not signed in")
        return user, session

    async def log_out(self, session: Session) -> None:
        """End this session."""
        await self._store.revoke_session(session.user_id, session.id, now=self._clock())

    async def change_password(
        self, user: User, session: Session | None, *, current: str, new: str
    ) -> EndedAccess:
        """Change the password; every other session ends and every API key is revoked (a
        key made with a stolen session must not outlive the change)."""
        stored = await self._store.get_user(user.id)
        if stored is None or not await self._accounts.password_matches(stored, current):
            raise AuthenticationError("the current password is not right")
        await self._accounts.update_user(user.user_id, password=new)
        return await self.end_access(user.user_id, keep=session.id if session else None)

    async def end_access(self, user_id: str, *, keep: str | None = None) -> EndedAccess:
        """End every session of the user but `keep`, and revoke every API key: after a
        change or reset of the password, or a deactivation."""
        now = self._clock()
        sessions = await self._store.revoke_sessions(user_id, now=now, keep=keep)
        keys = await self._store.revoke_api_keys(user_id, now=now)
        return EndedAccess(sessions_ended=sessions, api_keys_revoked=keys)

    async def _still_active(self, user_id: str) -> bool:
        """Whether the user is active, read after a session or key of theirs was stored: a
        deactivation ends what exists once it has set the flag, so a credential stored
        while it ran is either ended by it or refused here (auth/admin.py)."""
        fresh = await self._store.get_user(user_id)
        return fresh is not None and fresh.is_active
