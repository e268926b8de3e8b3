"""Reading recipients from CSV: streamed in batches, validated row by row.

The header row names the columns; `email` is required (any case), every other column
becomes a merge variable under its normalised name (`First Name` → `first_name`). Row
numbers are the spreadsheet's: the header is row 1, the first recipient row 2.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import BinaryIO

from mailramp.campaigns.models import Campaign
from mailramp.errors import ImportFileError, ValidationError
from mailramp.kit.ids import new_object_id
from mailramp.kit.types import normalize_email
from mailramp.sending import templates
from mailramp.sending.models import ImportReport, InvalidRow
from mailramp.tracking.models import EmailTracking, TrackingStatus

BATCH_SIZE = 1000
MAX_INVALID_LISTED = 1000
"""Invalid rows listed one by one in a report; beyond this only the count grows."""

csv.field_size_limit(1_000_000)


class RecipientReader:
    """Turns a CSV byte stream into batches of tracking records for one campaign."""

    def __init__(
        self,
        stream: BinaryIO,
        campaign: Campaign,
        *,
        now: datetime,
        report: ImportReport,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self._stream = stream
        self._campaign = campaign
        self._now = now
        self._report = report
        self._on_progress = on_progress
        self._required = templates.required_variables(campaign.subject, campaign.message)

    def _rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        # Strict UTF-8 (a BOM is allowed); a bad byte anywhere refuses the whole file.
        text = io.TextIOWrapper(self._stream, encoding="utf-8-sig", errors="strict", newline="")
        reader = csv.reader(text)
        try:
            header = next(reader, None)
            if header is None or not any(cell.strip() for cell in header):
                raise ImportFileError(
                    "the file is empty: expected a header row with an email column"
                )
            names = [templates.variable_name(cell) for cell in header]
            if "email" not in names:
                shown = ", ".join(repr(cell) for cell in header[:10])
                raise ImportFileError(
                    f"no 'email' column in the header row (found {shown}); "
                    "is this a CSV file with a header?",
                    row=1,
                )
            for required in self._required:
                if required not in names:
                    raise ValidationError(
                        "message",
                        f"the variable {{{{{required}}}}} has no column in the file and no "
                        f"default; add a '{required}' column or write {{{{{required}|…}}}}",
                    )
            for cells in reader:
                row_number = reader.line_num
                if any("\x00" in cell for cell in cells):
                    raise ImportFileError(
                        f"the file is not valid CSV (a NUL character at row {row_number}); "
                        "is it a spreadsheet saved in another format?",
                        row=row_number,
                    )
                if not any(cell.strip() for cell in cells):
                    continue
                if len(cells) != len(names):
                    yield (
                        row_number,
                        {
                            "__shape__": f"{len(cells)} fields, header has {len(names)}",
                            **dict(zip(names, cells, strict=False)),
                        },
                    )
                    continue
                yield row_number, dict(zip(names, cells, strict=True))
        except UnicodeDecodeError as error:
            raise ImportFileError(
                f"the file is not UTF-8 text (bad byte 0x{error.object[error.start]:02x} "
                f"near row {reader.line_num + 1}); save it as CSV UTF-8",
                row=reader.line_num + 1,
            ) from None
        except csv.Error as error:
            raise ImportFileError(
                f"the file is not valid CSV ({error}) at row {reader.line_num}", row=reader.line_num
            ) from None
        finally:
            text.detach()

    async def batches(self) -> AsyncIterator[list[EmailTracking]]:
        """Valid records, `BATCH_SIZE` at a time; invalid rows go to the report."""
        batch: list[EmailTracking] = []
        seen_in_file: set[str] = set()
        for row_number, cells in self._rows():
            self._report.rows += 1
            record = self._record(row_number, cells, seen_in_file)
            if record is not None:
                batch.append(record)
            if len(batch) >= BATCH_SIZE:
                yield batch
                batch = []
                self._progress()
        if batch:
            yield batch
        self._progress()

    def _progress(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self._stream.tell() if self._stream.seekable() else 0)

    def _record(
        self, row_number: int, cells: dict[str, str], seen_in_file: set[str]
    ) -> EmailTracking | None:
        raw = cells.get("email", "").strip()
        if "__shape__" in cells:
            self._invalid(row_number, raw, cells["__shape__"])
            return None
        try:
            email = normalize_email(raw)
        except ValueError as error:
            self._invalid(row_number, raw, str(error).split(": ", 1)[-1] if raw else "empty email")
            return None
        # Duplicates inside the file are counted here (a set of addresses, not of rows);
        # duplicates of recipients already in the campaign are counted by the store.
        if email in seen_in_file:
            self._report.duplicates += 1
            return None
        seen_in_file.add(email)
        variables = {name: value.strip() for name, value in cells.items() if name != "email"}
        missing = templates.missing_variables(self._required, {**variables, "email": email})
        if missing:
            raise ValidationError(
                "message",
                f"the variable {{{{{missing[0]}}}}} has no value in row {row_number} "
                f"({email}) and no default; fill it in or write {{{{{missing[0]}|…}}}}",
                value=row_number,
            )
        # Every value here is ours or was just validated: skip re-validating 100,000 times.
        return EmailTracking.model_construct(
            id=new_object_id(),
            campaign_id=self._campaign.campaign_id,
            user_id=self._campaign.user_id,
            mailbox_id=self._campaign.mailbox_id,
            recipient_email=email,
            merge_variables=variables,
            status=TrackingStatus.PENDING,
            created_at=self._now,
            updated_at=self._now,
        )

    def _invalid(self, row_number: int, value: str, reason: str) -> None:
        self._report.invalid_count += 1
        if len(self._report.invalid) < MAX_INVALID_LISTED:
            self._report.invalid.append(
                InvalidRow(row=row_number, value=value[:254], reason=reason)
            )
