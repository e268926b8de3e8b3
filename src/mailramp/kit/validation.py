"""Small argument checks shared by the services; each error names the field."""

from __future__ import annotations

import functools
from enum import StrEnum
from typing import TypeVar
from zoneinfo import available_timezones

from mailramp.errors import ValidationError
from mailramp.kit.ids import is_uuid4, normalize_object_id

EnumT = TypeVar("EnumT", bound=StrEnum)


def object_id_arg(value: object, *, field: str) -> str:
    """An ObjectId argument as a 24-hex string."""
    return normalize_object_id(value, field=field)


def campaign_id_arg(value: object) -> str:
    """A campaign_id argument as a canonical UUID4 string."""
    if not is_uuid4(value):
        raise ValidationError("campaign_id", f"must be a UUID4 string, got {value!r}", value=value)
    assert isinstance(value, str)
    return value.lower()


def enum_arg(enum: type[EnumT], value: object, *, field: str) -> EnumT:
    """A member of `enum` from its value; an unknown value lists the allowed ones."""
    try:
        return enum(str(value))
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in enum)
        raise ValidationError(
            field, f"unknown value {value!r}; use one of {allowed}", value=value
        ) from None


@functools.cache
def time_zones() -> list[str]:
    """The IANA time zone names this machine knows (its tz database), sorted: the ones
    mailramp accepts, and the list its API document gives."""
    return sorted(available_timezones())


def zone_problem(name: str) -> str | None:
    """Why `name` is no time zone (None when it is one): an IANA name such as
    Europe/Paris is expected."""
    if name not in _known_zones():
        return f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)"
    return None


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(time_zones())
