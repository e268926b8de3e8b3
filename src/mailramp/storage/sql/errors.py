"""Turning database integrity errors into the domain's errors, naming the field."""

from __future__ import annotations

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError

from mailramp.errors import ConflictError, DatabaseUnavailableError, DuplicateError, MailrampError
from mailramp.mailboxes.primary import PrimaryMailboxConflict

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
    ("uq_user_information_table_first_user", "first_user", "user"),
    ("user_information_table.first_user", "first_user", "user"),
    ("uq_campaign_creation_table_campaign_id", "campaign_id", "campaign"),
    ("campaign_creation_table.campaign_id", "campaign_id", "campaign"),
    ("uq_campaign_matrix_campaign_id", "campaign_id", "campaign_matrix document"),
    ("uq_lead_labels_user_id_key", "name", "label"),
    ("lead_labels.user_id, lead_labels.key", "name", "label"),
    ("campaign_matrix.campaign_id", "campaign_id", "campaign_matrix document"),
)

PRIMARY_INDEX_MARKERS = (
    "uq_linkbox_box_table_primary",
    "UNIQUE constraint failed: linkbox_box_table.user_id",
)


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


# SQLSTATEs that mean "no usable connection", not "this statement is wrong": connection
# exceptions (08), login refused (28), shutdown and start-up (57P01-57P03), a database that
# does not exist (3D000) and max_connections reached (53300).
_UNAVAILABLE_STATES = ("08", "28", "57P01", "57P02", "57P03", "3D000", "53300")


def unavailable_error(
    error: BaseException, url: URL, *, connecting: bool
) -> DatabaseUnavailableError | None:
    """The DatabaseUnavailableError `error` stands for, or None if it is about the statement.
    An OSError counts only while `connecting` (the driver raises socket errors as they are
    then; an OSError later comes from the caller's own I/O)."""
    if isinstance(error, DBAPIError):
        state = str(getattr(error.orig, "sqlstate", None) or "")
        if not error.connection_invalidated and not state.startswith(_UNAVAILABLE_STATES):
            return None
        reason = _first_line(str(error.orig)) or type(error.orig).__name__
    elif isinstance(error, OSError) and connecting:
        reason = _first_line(str(error)) or type(error).__name__
    else:
        return None
    return DatabaseUnavailableError(f"the database is unreachable ({where(url)}): {reason}")


def where(url: URL) -> str:
    """Which database a URL names, for messages (never its password)."""
    if url.get_backend_name() == "sqlite":
        return f"sqlite at {url.database or ':memory:'}"
    host = f"{url.host or 'localhost'}:{url.port or 5432}"
    return f"{url.get_backend_name()} at {host}/{url.database}"
