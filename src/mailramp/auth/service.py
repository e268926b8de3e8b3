"""Local accounts, sessions and API keys.

Secrets handed out (session cookies, API keys) are random 256-bit values; only their
SHA-256 is stored, so a database leak does not let anyone sign in. Failed logins are
throttled per account with one generic error, whether or not the account exists.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from mailramp.accounts.models import User
from mailramp.accounts.service import AccountService
from mailramp.auth.models import ApiKey, Session
from mailramp.errors import AuthenticationError, ForbiddenError, NotFoundError, ValidationError
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.ids import new_object_id
from mailramp.kit.passwords import hash_password, verify_password
from mailramp.kit.validation import object_id_arg
from mailramp.storage import Store

API_KEY_PREFIX = "mr_"
SESSION_DAYS = 14
FREE_FAILURES = 5
MAX_LOCK = timedelta(minutes=15)
INVALID_LOGIN = "invalid login or password"


def digest(secret: str) -> str:
    """SHA-256 of a handed-out secret (high-entropy, so no slow hash is needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewSession:
    """A session just created: `token` goes in the cookie, `csrf_token` in a readable one."""

    user: User
    session: Session
    token: str
    csrf_token: str


class AuthService:
    """Signs people and scripts in."""

    def __init__(
        self,
        store: Store,
        accounts: AccountService,
        *,
        clock: Clock = utc_now,
        signup_open: bool = True,
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._clock = clock
        self._signup_open = signup_open

    # -- API keys ---------------------------------------------------------------------

    async def create_api_key(self, user_id: str, *, name: str) -> tuple[ApiKey, str]:
        """A new key for the user; the full key is returned this once, never again."""
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
        return await self._store.insert_api_key(key), full

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
        key = await self._store.find_api_key(digest(presented), now=self._clock())
        user = await self._store.get_user(key.user_id) if key else None
        if user is None or not user.is_active:
            raise AuthenticationError("invalid API key")
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
        user = await self._accounts.create_user(
            user_name=user_name, login_id=login_id, email=email, password=password
        )
        return await self.start_session(user, user_agent)

    async def log_in(
        self, login_id: str, password: str, *, user_agent: str | None = None
    ) -> NewSession:
        """Check a password; throttled after repeated failures, one message for every failure."""
        now = self._clock()
        user = await self._store.get_user_by_login_id(login_id.strip().lower())
        if user is None or user.password is None or not user.is_active:
            verify_password(_dummy_hash(), password)  # same work whether or not the user exists
            raise AuthenticationError(INVALID_LOGIN)
        if user.failed_logins >= FREE_FAILURES and user.last_failed_login_at is not None:
            wait = min(timedelta(seconds=30 * 2 ** (user.failed_logins - FREE_FAILURES)), MAX_LOCK)
            if now < user.last_failed_login_at + wait:
                raise AuthenticationError(INVALID_LOGIN)
        if not verify_password(user.password, password):
            await self._store.record_login_failure(user.id, now=now)
            raise AuthenticationError(INVALID_LOGIN)
        if user.failed_logins:
            await self._store.reset_login_failures(user.id)
        await self._accounts.record_login(user.user_id)
        return await self.start_session(user, user_agent)

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
        await self._store.revoke_sessions(session.user_id, now=self._clock(), only_id=session.id)

    async def change_password(
        self, user: User, session: Session | None, *, current: str, new: str
    ) -> int:
        """Change the password and end every other session; returns how many ended."""
        stored = await self._store.get_user(user.id)
        if (
            stored is None
            or stored.password is None
            or not verify_password(stored.password, current)
        ):
            raise AuthenticationError("the current password is not right")
        await self._accounts.update_user(user.user_id, password=new)
        return await self._store.revoke_sessions(
            user.id, now=self._clock(), except_id=session.id if session else None
        )


@functools.cache
def _dummy_hash() -> str:
    """A real argon2id hash to verify against when the login id is unknown."""
    return hash_password(secrets.token_hex(16))
