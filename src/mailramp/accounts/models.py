"""The `user_information_table` document."""

from __future__ import annotations

from pydantic import Field, model_validator

from mailramp.kit.types import ObjectIdStr, Record, UTCDateTime


class User(Record):
    """A person who signs in to mailramp. `password` holds an argon2id hash, never plaintext,
    and is left out of `repr` and of every serialisation."""

    id: ObjectIdStr = Field(alias="_id")
    user_id: ObjectIdStr
    user_name: str
    login_id: str
    password: str | None = Field(default=None, repr=False, exclude=True)
    email: str | None = None
    clerk_user_id: str | None = None
    created_at: UTCDateTime
    updated_at: UTCDateTime
    is_active: bool = True
    last_login: UTCDateTime | None = None
    failed_logins: int = Field(default=0, exclude=True)
    last_failed_login_at: UTCDateTime | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _alias_matches(self) -> User:
        if self.user_id != self.id:
            raise ValueError("user_id must equal _id")
        return self

    @property
    def has_password(self) -> bool:
        """Whether the user can sign in with a local password."""
        return self.password is not None
