"""Models as stored rows/documents, shared by the SQL and MongoDB adapters: stored names
(aliases), enum values, nested models as JSON-ready dicts; and page bounds."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from pydantic import BaseModel

MAX_PAGE_SIZE = 1000
MAX_OFFSET = 2**31 - 1


def to_row(model: BaseModel) -> dict[str, Any]:
    """A model's stored fields under their stored names (aliases), including secret fields
    that serialisation leaves out."""
    row: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        row[field.alias or name] = _plain(getattr(model, name))
    return row


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list) and any(isinstance(item, BaseModel) for item in value):
        return [_plain(item) for item in value]
    return value


def changes_row(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Changes under stored names with stored values."""
    return {key: _plain(value) for key, value in changes.items()}


def check_page(offset: int, limit: int) -> None:
    """Refuse an offset or limit outside the bounds every listing has."""
    from mailramp.errors import ValidationError

    if not 0 <= offset <= MAX_OFFSET:
        raise ValidationError(
            "offset", f"must be between 0 and {MAX_OFFSET}, got {offset}", value=offset
        )
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError("limit", f"must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
