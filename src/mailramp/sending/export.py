"""A campaign's recipients and what happened to each, as spreadsheet-safe CSV rows (for the
API's export.csv and `mailramp campaign export`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from mailramp.campaigns.models import Campaign
from mailramp.storage import Store

EXPORT_COLUMNS = (
    "recipient_email",
    "status",
    "scheduled_at",
    "sent_at",
    "opened_at",
    "clicked_at",
    "replied_at",
    "bounced_at",
    "unsubscribed_at",
    "human_opened_at",
    "human_clicked_at",
    "attempts",
    "last_error",
)
PAGE_SIZE = 1000


def spreadsheet_safe(value: object) -> str:
    """A cell a spreadsheet will not run: text starting with = + - @ or a control character
    gets a leading apostrophe (OWASP's CSV-injection advice)."""
    text = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r", "\n") else text


async def export_rows(store: Store, campaign: Campaign) -> AsyncIterator[list[str]]:
    """The header, then one row per recipient (merge variables as extra columns), read a
    page at a time."""
    offset, variables = 0, None
    while True:
        page = await store.list_tracking(
            campaign.user_id, campaign.campaign_id, offset=offset, limit=PAGE_SIZE
        )
        for record in page.items:
            if variables is None:
                variables = sorted(record.merge_variables)
                yield [*EXPORT_COLUMNS, *variables]
            values = [getattr(record, column) for column in EXPORT_COLUMNS]
            values += [record.merge_variables.get(name) for name in variables]
            yield [spreadsheet_safe(value) for value in values]
        offset += len(page.items)
        if offset >= page.total or not page.items:
            if variables is None:
                yield list(EXPORT_COLUMNS)
            return
