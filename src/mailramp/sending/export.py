"""A campaign's recipients and what happened to each, as spreadsheet-safe CSV rows (for the
API's export.csv and `mailramp campaign export`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from mailramp.campaigns.models import VARIANT_LETTERS, Campaign
from mailramp.tracking.models import EVENT_TIMESTAMPS, EmailTracking
from mailramp.tracking.repository import TrackingRepository

# What a spreadsheet wants of each recipient: the address, where it is, every timestamp of
# what happened to it but the two a reader never asks for (`delivered_at` repeats
# `sent_at`; automatic replies are counted apart), and the attempts.
EXPORT_COLUMNS = (
    "recipient_email",
    "status",
    "scheduled_at",
    *(name for name in EVENT_TIMESTAMPS if name not in ("delivered_at", "auto_replied_at")),
    "attempts",
    "last_error",
)
PAGE_SIZE = 1000


def spreadsheet_safe(value: object) -> str:
    """A cell a spreadsheet will not run: text starting with = + - @ or a control character
    gets a leading apostrophe (OWASP's CSV-injection advice)."""
    text = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r", "\n") else text


async def _pages(
    store: TrackingRepository, campaign: Campaign
) -> AsyncIterator[Sequence[EmailTracking]]:
    """The campaign's records a page at a time, by address and step (keyset: a record whose
    time or status changes during the export is neither skipped nor repeated)."""
    after: tuple[str, int] | None = None
    while True:
        page = await store.export_tracking(
            campaign.user_id, campaign.campaign_id, after=after, limit=PAGE_SIZE
        )
        if not page:
            return
        yield page
        after = (page[-1].recipient_email, page[-1].step)


async def export_rows(store: TrackingRepository, campaign: Campaign) -> AsyncIterator[list[str]]:
    """The header, then one row per email (per recipient in a one-step campaign), read a
    page at a time. Every merge variable
    of any recipient is a column (imports with other columns add theirs): a first pass
    collects their names, so nothing a user imported is left out of the file."""
    names: set[str] = set()
    async for records in _pages(store, campaign):
        for record in records:
            names.update(record.merge_variables)
    variables = sorted(names)
    # A sequence: one row per email, with its step's place; an A/B test: its variant.
    places = {step: place for place, step in enumerate(campaign.steps, start=1)}
    sequence = len(places) > 1
    tested = any(len(campaign.step_wordings(step)) > 1 for step in places)
    extra = [*(["step"] if sequence else []), *(["variant"] if tested else [])]
    yield [*EXPORT_COLUMNS, *extra, *variables]
    async for records in _pages(store, campaign):
        for record in records:
            values = [getattr(record, column) for column in EXPORT_COLUMNS]
            values += [places.get(record.step, record.step)] if sequence else []
            values += [VARIANT_LETTERS[record.variant]] if tested else []
            values += [record.merge_variables.get(name) for name in variables]
            yield [spreadsheet_safe(value) for value in values]
