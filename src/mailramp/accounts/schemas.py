"""What callers send to create or change a user."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, StringConstraints, field_validator

from mailramp.kit.types import EmailAddress, Input, Name

LoginId = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=254)
]
ClerkUserId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]

MIN_PASSWORD_LENGTH = 10


def _password_rule(value: SecretStr | None) -> SecretStr | None:
    if value is not None and len(value.get_secret_value()) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"must be at least {MIN_PASSWORD_LENGTH} characters")
    return value


class UserCreate(Input):
    """A new user. `login_id` is case-insensitive (stored lowercased)."""

    user_name: Name
    login_id: LoginId
    email: EmailAddress | None = None
    clerk_user_id: ClerkUserId | None = None
    password: SecretStr | None = Field(default=None, repr=False)

    _check_password = field_validator("password")(_password_rule)


class UserUpdate(Input):
    """Changes to a user; fields left out stay as they are."""

    user_name: Name | None = None
    email: EmailAddress | None = None
    password: SecretStr | None = Field(default=None, repr=False)

    _check_password = field_validator("password")(_password_rule)
