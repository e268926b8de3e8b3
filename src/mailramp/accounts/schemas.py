"""What callers send to create or change a user."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, WithJsonSchema

from mailramp.kit.types import EmailAddress, Input, Name, Text

LoginId = Annotated[str, Text(254, lower=True)]
ClerkUserId = Annotated[str, Text(200)]

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
"""Long enough for any passphrase; a bound on the work one sign-up or sign-in asks of the
password hash."""


def _password_rule(value: SecretStr) -> SecretStr:
    length = len(value.get_secret_value())
    if length < MIN_PASSWORD_LENGTH:
        raise ValueError(f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if length > MAX_PASSWORD_LENGTH:
        raise ValueError(f"must be at most {MAX_PASSWORD_LENGTH} characters")
    return value


Password = Annotated[
    SecretStr,
    AfterValidator(_password_rule),
    WithJsonSchema(
        {
            "type": "string",
            "format": "password",
            "writeOnly": True,
            "minLength": MIN_PASSWORD_LENGTH,
            "maxLength": MAX_PASSWORD_LENGTH,
        }
    ),
]
"""A new password: MIN_PASSWORD_LENGTH to MAX_PASSWORD_LENGTH characters."""


class UserCreate(Input):
    """A new user. `login_id` is case-insensitive (stored lowercased)."""

    user_name: Name
    login_id: LoginId
    email: EmailAddress | None = None
    clerk_user_id: ClerkUserId | None = None
    password: Password | None = Field(default=None, repr=False)


class UserUpdate(Input):
    """Changes to a user; fields left out stay as they are."""

    user_name: Name | None = None
    email: EmailAddress | None = None
    password: Password | None = Field(default=None, repr=False)
