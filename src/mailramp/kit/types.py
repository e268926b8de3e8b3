"""Annotated field types shared by every domain's models and schemas."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import pydantic
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from mailramp.errors import ValidationError
from mailramp.kit.clock import ensure_utc
from mailramp.kit.ids import OBJECT_ID_SCHEMA, UUID4_SCHEMA, is_object_id, is_uuid4
from mailramp.kit.validation import time_zones, zone_problem


def _object_id(value: str) -> str:
    if not is_object_id(value):
        raise ValueError(f"must be a 24-character hex ObjectId, got {value!r}")
    return value.lower()


FIRST_YEAR, LAST_YEAR = 2, 9998
"""The years a moment given to mailramp may name. Years 1 and 9999 are refused whatever
their offset: some of their moments cannot be expressed in UTC, and a rule that held only
for some offsets could not be declared in the API document."""
_YEARS = (
    "(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
)
_HOUR, _MINUTE = "(?:[01][0-9]|2[0-3])", "[0-5][0-9]"
RFC3339 = re.compile(
    f"^{_YEARS}-[0-9]{{2}}-[0-9]{{2}}[Tt ]{_HOUR}:{_MINUTE}:{_MINUTE}(?:[.][0-9]+)?"
    f"(?:[Zz]|[+-]{_HOUR}:{_MINUTE})$"
)
"""A moment as the API takes it: RFC 3339 with its offset, years FIRST_YEAR to LAST_YEAR,
no leap second (`23:59:60` names no moment Python, or most databases, can hold)."""
DATE_TIME_SCHEMA = {"type": "string", "format": "date-time", "pattern": RFC3339.pattern}


def _aware_utc(value: datetime) -> datetime:
    try:
        return ensure_utc(value, field="")
    except ValidationError as error:
        raise ValueError(error.message.removeprefix(": ")) from None


def _rfc3339(value: Any) -> Any:
    if isinstance(value, int | float):  # pydantic would read it as a Unix time
        raise ValueError(f"must be a date and time string (RFC 3339), not the number {value!r}")
    if isinstance(value, str) and not RFC3339.match(value):
        raise ValueError(
            f"must be a date and time with its offset (RFC 3339, years {FIRST_YEAR} to "
            f"{LAST_YEAR}), e.g. 2027-01-10T09:00:00+01:00; got {value!r}"
        )
    return value


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


ObjectIdStr = Annotated[str, AfterValidator(_object_id), WithJsonSchema(OBJECT_ID_SCHEMA)]
UTCDateTime = Annotated[datetime, AfterValidator(_aware_utc)]
MomentInput = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    AfterValidator(_aware_utc),
    WithJsonSchema(DATE_TIME_SCHEMA),
]
"""A moment a caller gives: as text, RFC 3339 with its offset in the years the API document
states; as a datetime, aware; either way returned in UTC."""
EmailAddress = Annotated[
    str,
    AfterValidator(normalize_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 254}),
]
CampaignIdStr = Annotated[str, AfterValidator(_uuid4), WithJsonSchema(UUID4_SCHEMA)]

WHITESPACE = "".join(chr(code) for code in range(0x3001) if chr(code).isspace())
"""What mailramp strips around text and counts as blank: Python's whitespace (`str.strip`,
`str.split`), the same characters everywhere."""
NOT_BLANK = "[^" + "".join(f"\\u{ord(c):04x}" for c in WHITESPACE) + "]"
"""JSON Schema's pattern (ECMA-262, found anywhere in the text) for "not whitespace only",
with WHITESPACE spelled out: ECMA's `\\s` is another set."""


@dataclass(frozen=True)
class Text:
    """A text field's rule, in pydantic and in the API document alike: at most `max_length`
    characters as sent, then stripped of surrounding WHITESPACE; `required`: something must
    remain; `lower`: lowercased. (Length is counted before stripping so that the document
    can state it exactly.)"""

    max_length: int
    required: bool = True
    lower: bool = False

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            self._clean, core_schema.str_schema(max_length=self.max_length)
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        declared: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if self.required:
            declared |= {"minLength": 1, "pattern": NOT_BLANK}
        return declared

    def _clean(self, value: str) -> str:
        value = value.strip(WHITESPACE)
        if self.required and not value:
            raise ValueError("must not be empty or only whitespace")
        return value.lower() if self.lower else value


Name = Annotated[str, Text(200)]


def _time_zone(value: str) -> str:
    problem = zone_problem(value)
    if problem:
        raise ValueError(problem)
    return value


TimeZoneName = Annotated[
    str,
    AfterValidator(_time_zone),
    WithJsonSchema({"type": "string", "enum": time_zones()}),
]
"""An IANA time zone name the machine's tz database knows (Europe/Paris, UTC…)."""


def refuse_null(schema: dict[str, Any], names: Iterable[str]) -> None:
    """Say in a model's JSON Schema that its fields `names` may be left out but not sent as
    null (a change that cannot clear them); for `json_schema_extra`."""
    for name in names:
        field = schema["properties"][name]
        kept = [variant for variant in field.pop("anyOf", []) if variant.get("type") != "null"]
        if len(kept) == 1:
            field.update(kept[0])
        elif kept:
            field["anyOf"] = kept
        if field.get("default", ...) is None:
            del field["default"]


class Record(BaseModel):
    """A stored document: immutable, `_id` exposed as `id` and serialised as `_id`."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")


class Input(BaseModel):
    """Caller input, validated before anything is written."""

    model_config = ConfigDict(extra="forbid")


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
