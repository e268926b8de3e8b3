"""Identifiers: ObjectIds as 24 lowercase hex characters, campaign ids as UUID4 strings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from bson import ObjectId

OBJECT_ID_SCHEMA = {"type": "string", "pattern": "^[0-9a-fA-F]{24}$", "format": "objectid"}
"""An ObjectId as the API takes it (any case), in JSON Schema: what `is_object_id` accepts."""
UUID4_SCHEMA = {
    "type": "string",
    "format": "uuid",
    "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}"
    "-[0-9a-fA-F]{12}$",
}
"""A campaign id in JSON Schema: what `is_uuid4` accepts."""


def new_object_id() -> str:
    """A new ObjectId as the 24-hex string stored in `_id`."""
    return str(ObjectId())


def is_object_id(value: object) -> bool:
    """Whether `value` is a 24-hex ObjectId string (or an ObjectId)."""
    if isinstance(value, ObjectId):
        return True
    return isinstance(value, str) and ObjectId.is_valid(value) and len(value) == 24


def normalize_object_id(value: object, *, field: str) -> str:
    """Return `value` as a lowercase 24-hex string or raise a ValidationError naming `field`."""
    from mailramp.errors import ValidationError

    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, str) and is_object_id(value):
        return value.lower()
    raise ValidationError(field, f"must be a 24-character hex ObjectId, got {value!r}", value=value)


def new_campaign_id() -> str:
    """A new UUID4 campaign id."""
    return str(uuid.uuid4())


def is_uuid4(value: object) -> bool:
    """Whether `value` is a canonical UUID4 string."""
    if not isinstance(value, str):
        return False
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return parsed.version == 4 and str(parsed) == value.lower()


def object_id_time(value: str) -> datetime:
    """When an ObjectId was made (its first four bytes: seconds since the epoch, by the
    clock of the machine that made it)."""
    return datetime.fromtimestamp(int(value[:8], 16), UTC)
