"""Time: every datetime mailramp handles is timezone-aware UTC.

Naive datetimes are rejected, not guessed: a naive value could be local time or UTC and a
wrong guess moves a campaign by hours. Aware values in any zone are converted to UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, aware, in UTC, truncated to milliseconds (what every backend keeps)."""
    return truncate(datetime.now(UTC))


def truncate(moment: datetime) -> datetime:
    """Drop sub-millisecond precision so a value round-trips unchanged through MongoDB."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def ensure_utc(moment: datetime, *, field: str) -> datetime:
    """Return `moment` in UTC; a naive datetime is a ValidationError naming `field`."""
    from mailramp.errors import ValidationError

    if not isinstance(moment, datetime):
        raise ValidationError(field, f"must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValidationError(
            field,
            "must be timezone-aware (got a naive datetime); "
            "pass e.g. datetime.now(timezone.utc) or a value with an explicit offset",
            value=moment.isoformat(),
        )
    try:
        return truncate(moment.astimezone(UTC))
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before the first UTC date
        raise ValidationError(
            field, "is outside the dates this server can store", value=moment.isoformat()
        ) from None
