"""A document of a legacy collection, kept as it was written."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from mailramp.kit.types import ObjectIdStr, Record, UTCDateTime


class LegacyCollection(StrEnum):
    """The collections the schema's migration notes keep readable."""

    WARM_UP_EMAILS = "warm_up_emails_table"
    EMAIL_CAMPAIGNS = "email_campaigns"


class LegacyDocument(Record):
    """An old document: its id, owner (when it names one) and its fields untouched."""

    id: ObjectIdStr = Field(alias="_id")
    user_id: ObjectIdStr | None = None
    created_at: UTCDateTime | None = None
    document: dict[str, Any]
