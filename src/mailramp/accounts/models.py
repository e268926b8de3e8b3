"""The `user_information_table` document."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from mailramp.kit.types import ObjectIdStr, Record, UTCDateTime


class UserFields(Record):
    """What may be shown of a user: everything but the password hash and the sign-in
    throttle's counters."""

    id: ObjectIdStr = Field(alias="_id")
    user_id: ObjectIdStr
    user_name: str
    login_id: str
    email: str | None = None
    clerk_user_id: str | None = None
    created_at: UTCDateTime
    updated_at: UTCDateTime
    is_active: bool = True
    is_admin: bool = False
    """Administers the instance: its users, their keys, the audit log, the workers
    (auth/admin.py). The instance's first user is one; more are made by an admin."""
    last_login: UTCDateTime | None = None

    @model_validator(mode="after")
    def _alias_matches(self) -> Self:
        if self.user_id != self.id:
            raise ValueError("user_id must equal _id")
        return self


class User(UserFields):
    """A person who signs in to mailramp. `password` holds an argon2id hash, never plaintext,
    and is left out of `repr` and of every serialisation."""

    password: str | None = Field(default=None, repr=False, exclude=True)
    failed_logins: int = Field(default=0, exclude=True)
    last_failed_login_at: UTCDateTime | None = Field(default=None, exclude=True)
    first_user: bool | None = Field(default=None, exclude=True)
    """True on the instance's first user only, None on every other: a unique index lets
    exactly one insert claim it, so two sign-ups racing on an empty instance make one
    admin, not two."""

    @property
    def has_password(self) -> bool:
        """Whether the user can sign in with a local password."""
        return self.password is not None
