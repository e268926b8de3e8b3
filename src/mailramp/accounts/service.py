"""Rules for users: creation, Clerk sign-in, passwords, profile changes."""

from __future__ import annotations

import logging
from typing import Any

from mailramp.accounts.models import User
from mailramp.accounts.repository import UserRepository
from mailramp.accounts.schemas import UserCreate, UserUpdate
from mailramp.errors import DuplicateError, NotFoundError, found
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.ids import new_object_id
from mailramp.kit.passwords import PASSWORDS, Passwords, needs_rehash
from mailramp.kit.types import normalize_email, parse_input
from mailramp.kit.validation import object_id_arg

log = logging.getLogger(__name__)


class AccountService:
    """Creates and changes users."""

    def __init__(
        self, users: UserRepository, *, clock: Clock = utc_now, passwords: Passwords = PASSWORDS
    ) -> None:
        self._users = users
        self._clock = clock
        self._passwords = passwords

    async def create_user(self, *, admin: bool = False, **fields: Any) -> User:
        """Create a user from UserCreate's fields (`user_name`, `login_id`, and optionally
        `email`, `clerk_user_id`, `password`); `login_id`, `email` and `clerk_user_id` must
        be free. The instance's first user is its admin; `admin` makes another one (only
        an admin's or the operator's call passes it: auth/admin.py, the command line)."""
        data = parse_input(UserCreate, fields)
        now = self._clock()
        user_id = new_object_id()
        secret = data.password.get_secret_value() if data.password else None
        user = User(
            id=user_id,
            user_id=user_id,
            user_name=data.user_name,
            login_id=data.login_id,
            password=await self._passwords.hash(secret) if secret else None,
            email=data.email,
            clerk_user_id=data.clerk_user_id,
            created_at=now,
            updated_at=now,
            is_active=True,
            is_admin=admin,
        )
        if not await self._users.any_user():
            # Claimed by the insert itself (a unique index on `first_user`): of two sign-ups
            # racing on an empty instance, one is the admin and the other an ordinary user.
            try:
                first = user.model_copy(update={"is_admin": True, "first_user": True})
                created = await self._users.insert_user(first)
            except DuplicateError as taken:
                if taken.field != "first_user":
                    raise
            else:
                log.info("user %s is this instance's first user and its admin", created.user_id)
                return created
        return await self._users.insert_user(user)

    async def get_user(self, user_id: str) -> User:
        """The user with this id."""
        return found(
            await self._users.get_user(object_id_arg(user_id, field="user_id")), "user", user_id
        )

    async def get_user_by_login_id(self, login_id: str) -> User:
        """The user with this login id (case-insensitive)."""
        return found(
            await self._users.get_user_by_login_id(login_id.strip().lower()),
            "user with login_id",
            login_id,
        )

    async def get_user_by_clerk_id(self, clerk_user_id: str) -> User:
        """The user linked to this Clerk id."""
        return found(
            await self._users.get_user_by_clerk_id(clerk_user_id.strip()),
            "user with clerk_user_id",
            clerk_user_id,
        )

    async def get_or_create_clerk_user(
        self, clerk_user_id: str, *, user_name: str | None = None, email: str | None = None
    ) -> User:
        """The user for a Clerk sign-in, created on first sign-in (schema migration note 3).

        The login id is the email when it is free, else the Clerk id itself. Concurrent first
        sign-ins of one Clerk user yield one user.
        """
        clerk_user_id = clerk_user_id.strip()
        existing = await self._users.get_user_by_clerk_id(clerk_user_id)
        if existing is not None:
            return existing
        if email:
            await self._release_unverified_email(email)
        name = user_name or email or clerk_user_id
        login_ids = [email, clerk_user_id] if email else [clerk_user_id]
        for login_id in login_ids:
            try:
                return await self.create_user(
                    user_name=name, login_id=login_id, email=email, clerk_user_id=clerk_user_id
                )
            except DuplicateError as error:
                # A concurrent first sign-in of the same Clerk user may have won the race on
                # any of the unique fields: if it did, its user is ours.
                winner = await self._users.get_user_by_clerk_id(clerk_user_id)
                if winner is not None:
                    return winner
                if error.field != "login_id" or login_id == clerk_user_id:
                    raise
        raise AssertionError("unreachable: the last login id either succeeds or raises")

    async def _release_unverified_email(self, email: str) -> None:
        """Clerk has verified that `email` is this person's. A local account that merely
        typed the address at sign-up (never proven) gives it up, so no one can squat an
        address and lock its owner out of a Clerk sign-in."""
        holder = await self._users.get_user_by_email(normalize_email(email))
        if holder is not None and holder.clerk_user_id is None:
            log.warning(
                "email of local account %s released to a Clerk sign-in that proved it",
                holder.user_id,
            )
            await self._users.update_user(holder.id, {"email": None, "updated_at": self._clock()})

    async def update_user(self, user_id: str, **changes: Any) -> User:
        """Change the user's name, email or password; fields not given stay."""
        user = await self.get_user(user_id)
        data = parse_input(UserUpdate, changes)
        values: dict[str, Any] = {}
        for field in data.model_fields_set:
            value = getattr(data, field)
            if field == "password":
                value = (
                    await self._passwords.hash(value.get_secret_value())
                    if value is not None
                    else None
                )
            values[field] = value
        if "user_name" in values and values["user_name"] is None:
            del values["user_name"]
        values["updated_at"] = self._clock()
        return await self._stored(await self._users.update_user(user.id, values), user.id)

    async def record_login(self, user_id: str) -> User:
        """Note a successful sign-in."""
        user = await self.get_user(user_id)
        return await self._stored(
            await self._users.update_user(user.id, {"last_login": self._clock()}), user.id
        )

    async def deactivate_user(self, user_id: str) -> User:
        """Stop the user from signing in; their data stays."""
        return await self._set_active(user_id, active=False)

    async def reactivate_user(self, user_id: str) -> User:
        """Let a deactivated user sign in again."""
        return await self._set_active(user_id, active=True)

    async def set_admin(self, user_id: str, *, admin: bool) -> User:
        """Make the user an admin of the instance, or not (auth/admin.py decides who may)."""
        user = await self.get_user(user_id)
        changes = {"is_admin": admin, "updated_at": self._clock()}
        return await self._stored(await self._users.update_user(user.id, changes), user.id)

    async def password_matches(self, user: User, password: str) -> bool:
        """Whether `password` is the user's; a match hashed with weaker parameters than
        today's is hashed again."""
        if user.password is None or not await self._passwords.verify(user.password, password):
            return False
        if needs_rehash(user.password):
            rehashed = await self._passwords.hash(password)
            await self._users.update_user(user.id, {"password": rehashed})
        return True

    async def spend_password_check(self, password: str) -> None:
        """The work of one password check, against no account: a refusal for an unknown or
        locked account then takes as long as one for a wrong password."""
        await self._passwords.verify(self._passwords.dummy_hash, password)

    async def _set_active(self, user_id: str, *, active: bool) -> User:
        user = await self.get_user(user_id)
        changes = {"is_active": active, "updated_at": self._clock()}
        return await self._stored(await self._users.update_user(user.id, changes), user.id)

    async def _stored(self, user: User | None, user_id: str) -> User:
        if user is None:
            raise NotFoundError("user", user_id)
        return user
