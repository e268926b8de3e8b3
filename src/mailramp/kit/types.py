"""Annotated field types shared by every domain's models and schemas."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import pydantic
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from mailramp.errors import ValidationError
from mailramp.kit.clock import ensure_utc
from mailramp.kit.ids import is_object_id, is_uuid4


def _object_id(value: str) -> str:
    if not is_object_id(value):
        raise ValueError(f"must be a 24-character hex ObjectId, got {value!r}")
    return value.lower()


def _aware_utc(value: datetime) -> datetime:
    try:
        return ensure_utc(value, field="")
    except ValidationError as error:
        raise ValueError(error.message.removeprefix(": ")) from None


def normalize_email(value: str) -> str:
    """Syntax-check an address (no DNS) and return it normalised and lowercased.

    mailramp treats addresses case-insensitively, as every major mail provider does, so
    `Ann@Example.com` and `ann@example.com` are one recipient, one login, one mailbox.

    The plain-ASCII `local@domain` shape of nearly every address takes a fast path whose
    domain check is email-validator's own, cached per domain (imports repeat domains);
    everything else goes through email-validator whole. A property test holds the two
    paths to the same answers.
    """
    candidate = value.strip()
    match = _SIMPLE_ADDRESS.fullmatch(candidate)
    if match is not None and len(candidate) <= 254:
        local, domain = match.group(1), match.group(2)
        if (
            len(local) <= 64
            and ".." not in local
            and not local.startswith(".")
            and not local.endswith(".")
        ):
            normalized_domain = _checked_domain(domain.lower())
            if normalized_domain is not None:
                return f"{local.lower()}@{normalized_domain}"
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(f"{value!r} is not a valid email address: {error}") from None
    return result.normalized.lower()


_SIMPLE_ADDRESS = re.compile(r"([A-Za-z0-9._%+\-]+)@([A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?)")


@functools.lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> str | None:
    """The normalised domain if email-validator accepts it (checked once per domain)."""
    try:
        result = validate_email(f"postmaster@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.ascii_domain.lower()


def _uuid4(value: str) -> str:
    if not is_uuid4(value):
        raise ValueError(f"must be a UUID4 string, got {value!r}")
    return value.lower()


ObjectIdStr = Annotated[str, AfterValidator(_object_id)]
UTCDateTime = Annotated[datetime, AfterValidator(_aware_utc)]
EmailAddress = Annotated[str, AfterValidator(normalize_email)]
CampaignIdStr = Annotated[str, AfterValidator(_uuid4)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Record(BaseModel):
    """A stored document: immutable, `_id` exposed as `id` and serialised as `_id`."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")


class Input(BaseModel):
    """Caller input, validated before anything is written."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


InputT = TypeVar("InputT", bound=Input)
SECRET_INPUTS = frozenset({"password", "access_token", "refresh_token"})
T = TypeVar("T")


def parse_input(model: type[InputT], data: dict[str, Any]) -> InputT:
    """Validate `data` into `model`; the first problem is a ValidationError naming its field."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        problem = error.errors()[0]
        message = problem["msg"].removeprefix("Value error, ")
        # A rule spanning several fields has no location; its message starts with the field.
        field = ".".join(str(part) for part in problem["loc"]) or message.split(" ", 1)[0]
        value = problem.get("input")
        if field in SECRET_INPUTS or isinstance(value, pydantic.SecretStr):
            value = None  # never carry a secret in an error, where it could be logged
        raise ValidationError(field, message, value=value) from None


class Page(BaseModel, Generic[T]):
    """One page of a listing: the items, how many match in all, and where the page starts."""

    items: Sequence[T]
    total: int
    offset: int
    limit: int
