"""Lead statuses: where a conversation with a person stands, and what each one does."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from mailramp.kit.types import ObjectIdStr, Record, UTCDateTime


class LeadStatus(StrEnum):
    """The statuses every user has; a user's own labels (`LeadLabel`) come beside them."""

    INTERESTED = "interested"
    MEETING_BOOKED = "meeting_booked"
    MEETING_COMPLETED = "meeting_completed"
    WON = "won"
    LOST = "lost"
    NOT_INTERESTED = "not_interested"
    WRONG_PERSON = "wrong_person"
    OUT_OF_OFFICE = "out_of_office"
    DO_NOT_CONTACT = "do_not_contact"


def status_title(status: str) -> str:
    """How a page shows a status: "Meeting booked" for `meeting_booked`; a label as named."""
    if status in BUILTIN:
        return status.replace("_", " ").capitalize()
    return status


def shown_status(status: str | None) -> str:
    """A person's status as a notice or the terminal says it: its title, or "none"."""
    return status_title(status) if status else "none"


def builtin_status(text: str) -> LeadStatus | None:
    """The built-in status `text` names, by value or title in any case ("Do not contact",
    "do-not-contact"), or None."""
    key = "_".join(text.casefold().replace("-", " ").split())
    return LeadStatus(key) if key in BUILTIN else None


BUILTIN = frozenset(status.value for status in LeadStatus)


ENDS_SEQUENCE = frozenset({LeadStatus.NOT_INTERESTED, LeadStatus.DO_NOT_CONTACT})
"""Statuses that stop the person's sequence: nothing more of the campaign goes to them."""

SUPPRESSES = frozenset({LeadStatus.DO_NOT_CONTACT})
"""Statuses that also put the address on the user's suppression list (no campaign of theirs
mails it again)."""

LABEL_MAX = 40
"""The longest label name, in characters."""


class LeadLabel(Record):
    """A lead status of the user's own ("Needs pricing"), offered beside the built-in ones;
    a person holds it by its name."""

    id: ObjectIdStr = Field(alias="_id")
    user_id: ObjectIdStr
    name: str
    key: str
    """The name compared in any case (`label_key`): unique per user."""
    created_at: UTCDateTime


def label_key(name: str) -> str:
    """What two label names that differ only in case or spacing share."""
    return " ".join(name.split()).casefold()
