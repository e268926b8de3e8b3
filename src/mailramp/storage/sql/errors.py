"""Turning database integrity errors into the domain's errors, naming the field."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from mailramp.errors import ConflictError, DuplicateError, MailrampError

# (substring of the driver's message, field it means). PostgreSQL names the index;
# SQLite names the columns. Composite and more specific entries come first.
_UNIQUE_RULES: tuple[tuple[str, str, str], ...] = (
    ("uq_linkbox_box_table_user_id_email", "email", "mailbox"),
    ("linkbox_box_table.user_id, linkbox_box_table.email", "email", "mailbox"),
    ("uq_email_tracking_campaign_id_recipient_email", "recipient_email", "recipient"),
    ("email_tracking.campaign_id, email_tracking.recipient_email", "recipient_email", "recipient"),
    ("uq_user_information_table_login_id", "login_id", "user"),
    ("user_information_table.login_id", "login_id", "user"),
    ("uq_user_information_table_email", "email", "user"),
    ("user_information_table.email", "email", "user"),
    ("uq_user_information_table_clerk_user_id", "clerk_user_id", "user"),
    ("user_information_table.clerk_user_id", "clerk_user_id", "user"),
    ("uq_campaign_creation_table_campaign_id", "campaign_id", "campaign"),
    ("campaign_creation_table.campaign_id", "campaign_id", "campaign"),
    ("uq_campaign_matrix_campaign_id", "campaign_id", "campaign_matrix document"),
    ("campaign_matrix.campaign_id", "campaign_id", "campaign_matrix document"),
)

PRIMARY_INDEX_MARKERS = (
    "uq_linkbox_box_table_primary",
    "UNIQUE constraint failed: linkbox_box_table.user_id",
)


class PrimaryMailboxConflict(Exception):
    """Two transactions tried to make a primary mailbox for one user at once: retry."""


def translate_integrity_error(
    error: IntegrityError, values: dict[str, object] | None = None
) -> MailrampError | PrimaryMailboxConflict:
    """The domain error an integrity error stands for."""
    text = str(error.orig)
    values = values or {}
    if (
        any(marker in text for marker in PRIMARY_INDEX_MARKERS)
        and "linkbox_box_table.email" not in text
    ):
        return PrimaryMailboxConflict(text)
    for marker, field, kind in _UNIQUE_RULES:
        if marker in text:
            return DuplicateError(field, values.get(field), kind=kind)
    lowered = text.lower()
    if "unique" in lowered or "duplicate key" in lowered:
        # A primary key: every `_id` is generated, so this means a caller reused one.
        return DuplicateError("_id", values.get("_id"))
    if "foreign key" in lowered:
        return ConflictError(f"a referenced record does not exist ({_first_line(text)})")
    return ConflictError(f"the database refused the change: {_first_line(text)}")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
