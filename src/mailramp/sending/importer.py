"""Reading recipients from CSV: streamed in batches, validated row by row.

The header row names the columns; `email` is required (any case), every other column
becomes a merge variable under its normalised name (`First Name` → `first_name`). Row
numbers are the spreadsheet's: the header is row 1, the first recipient row 2 (they count
lines, so a quoted value spanning two lines moves the rows after it down by one). A
`timezone` column (an IANA name such as America/New_York) makes the campaign's sending
window apply in that recipient's own time zone; a name that is no time zone makes the row
invalid (skipped and listed).

A file that is not UTF-8 CSV with an email column is refused as a whole, naming the row
and what to change: another encoding (UTF-16, Latin-1, a workbook), a NUL character, a
quote that is never closed, a value longer than `MAX_FIELD_CHARACTERS`, a header naming a
variable twice, or no recipient row at all. Rows with a bad address are skipped and listed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import BinaryIO

from mailramp.campaigns import templates
from mailramp.campaigns.models import MAX_STEPS, Campaign
from mailramp.errors import ImportFileError, ValidationError
from mailramp.kit.ids import new_object_id
from mailramp.kit.types import normalize_email
from mailramp.kit.validation import zone_problem
from mailramp.sending.models import ImportReport, InvalidRow
from mailramp.tracking.models import EmailTracking, TrackingStatus

BATCH_SIZE = 1000
MAX_INVALID_LISTED = 1000
"""Invalid rows listed one by one in a report; beyond this only the count grows."""
MAX_FIELD_CHARACTERS = 1_000_000
"""The longest value a cell may hold; it also bounds what an unclosed quote can swallow."""
SNIFF_BYTES = 4096
SAVE_AS = "save it as CSV UTF-8 (comma-separated)"

csv.field_size_limit(MAX_FIELD_CHARACTERS)

# Files people upload by mistake, known by their first bytes.
SIGNATURES = (
    (b"\xff\xfe\x00\x00", "UTF-32 text"),
    (b"\x00\x00\xfe\xff", "UTF-32 text"),
    (b"\xff\xfe", "UTF-16 text (it starts with a UTF-16 byte-order mark)"),
    (b"\xfe\xff", "UTF-16 text (it starts with a UTF-16 byte-order mark)"),
    (b"PK\x03\x04", "a ZIP archive, such as an Excel workbook (.xlsx), not CSV"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (.xls), not CSV"),
)


def _line_breaks(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


class _SniffingReader(io.BufferedIOBase):
    """The upload's bytes for the text decoder: the first block is read ahead to recognise
    the file's kind, and line breaks before the block being decoded are counted, so a bad
    byte can be reported with its row."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream
        self.head = stream.read(SNIFF_BYTES)
        self._pending = self.head
        self._block = b""
        self.lines_before_block = 0

    @property
    def name(self) -> str:
        return str(getattr(self._stream, "name", "recipients"))

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
        else:
            data = self._stream.read(-1 if size is None else size)
        # A CR at the end of one block and an LF at the start of the next are one break.
        joined = self._block.endswith(b"\r") and data.startswith(b"\n")
        self.lines_before_block += _line_breaks(self._block) - joined
        self._block = data
        return data

    def read1(self, size: int = -1, /) -> bytes:
        return self.read(size)

    def row_of(self, error: UnicodeDecodeError) -> int:
        """The row holding the byte the decoder refused (in the block just read)."""
        return self.lines_before_block + _line_breaks(error.object[: error.start]) + 1


def _refuse_other_kinds(head: bytes) -> None:
    for signature, kind in SIGNATURES:
        if head.startswith(signature):
            raise ImportFileError(f"the file is {kind}; {SAVE_AS}", row=1)
    # UTF-16 without a byte-order mark: in ASCII text every other byte is NUL.
    half = len(head) // 2
    if half >= 2:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if max(even, odd) >= 0.8 * half and min(even, odd) <= 0.1 * half:
            order = "big-endian" if even > odd else "little-endian"
            raise ImportFileError(
                f"the file looks like UTF-16 text ({order}, no byte-order mark: every other "
                f"byte is NUL); {SAVE_AS}",
                row=1,
            )


def _check_header(header: list[str]) -> list[tuple[int, str]]:
    """The named columns as (position, variable name); a header that cannot work raises."""
    if not any(cell.strip() for cell in header):
        raise ImportFileError("the file is empty: expected a header row with an email column")
    if any("\x00" in cell for cell in header):
        raise ImportFileError(
            "the file is not valid CSV (a NUL character at row 1); "
            "is it a spreadsheet saved in another format?",
            row=1,
        )
    columns: list[tuple[int, str]] = []
    first_seen: dict[str, int] = {}
    for position, cell in enumerate(header):
        name = templates.variable_name(cell)
        if not name:
            continue  # an unnamed column (a spreadsheet's trailing empty cells): not a variable
        if name in first_seen:
            earlier = first_seen[name]
            raise ImportFileError(
                f"the header has two columns for {name!r}: column {earlier + 1} "
                f"({header[earlier]!r}) and column {position + 1} ({cell!r}); "
                "rename or remove one",
                row=1,
            )
        first_seen[name] = position
        columns.append((position, name))
    if "email" not in first_seen:
        raise ImportFileError(_no_email_column(header), row=1)
    return columns


def _no_email_column(header: list[str]) -> str:
    shown = ", ".join(repr(cell[:60]) for cell in header[:10])
    message = f"no 'email' column in the header row (found {shown})"
    if len(header) == 1:
        for separator, name in ((";", "semicolons"), ("\t", "tabs")):
            parts = [templates.variable_name(part) for part in header[0].split(separator)]
            if "email" in parts:
                return f"{message}: its columns are separated by {name}, not commas; {SAVE_AS}"
    if any("@" in cell for cell in header):
        return (
            f"{message}: the first row looks like a recipient, not a header; add a header "
            "row such as 'email,first_name' above it"
        )
    return f"{message}; is this a CSV file with a header?"


def _csv_problem(error: csv.Error, *, start: int, line: int) -> ImportFileError:
    text = str(error)
    if "unexpected end of data" in text:
        return ImportFileError(
            f'a quoted value that starts in row {start} is never closed (a missing "); '
            'inside quotes, write a quote as ""',
            row=start,
        )
    if "field larger than field limit" in text:
        if start == line:
            problem = f"row {start} has a value longer than {MAX_FIELD_CHARACTERS:,} characters"
        else:
            problem = (
                f"a value that starts in row {start} runs past {MAX_FIELD_CHARACTERS:,} "
                "characters (a quote that is never closed?)"
            )
        return ImportFileError(problem, row=start)
    if "expected after" in text:
        return ImportFileError(
            f"row {line}: a quoted value is followed by more text before the next comma; "
            'inside quotes, write a quote as ""',
            row=line,
        )
    return ImportFileError(f"the file is not valid CSV ({text}) at row {line}", row=line)


class RecipientRows:
    """The recipients of a CSV byte stream, row by row, as (email, variables): invalid rows
    go to the report; a file that cannot be read as recipients raises."""

    def __init__(self, stream: BinaryIO, *, required: list[str], report: ImportReport) -> None:
        self._stream = stream
        self._required = required
        self._report = report

    def __iter__(self) -> Iterator[tuple[str, dict[str, str]]]:
        seen_in_file: set[str] = set()
        for row_number, cells in self._rows():
            self._report.rows += 1
            recipient = self._recipient(row_number, cells, seen_in_file)
            if recipient is not None:
                yield recipient

    def _rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        source = _SniffingReader(self._stream)
        _refuse_other_kinds(source.head)
        # Strict UTF-8 (a BOM is allowed); a bad byte anywhere refuses the whole file.
        text = io.TextIOWrapper(source, encoding="utf-8-sig", errors="strict", newline="")
        # Strict CSV: an unclosed quote is an error, not a value swallowing the file's rest.
        reader = csv.reader(text, strict=True)
        start = 1
        try:
            header = next(reader, None) or [""]
            columns = _check_header(header)
            for required in self._required:
                if required not in {name for _, name in columns}:
                    raise ValidationError(
                        "message",
                        f"the variable {{{{{required}}}}} has no column in the file and no "
                        f"default; add a '{required}' column or write {{{{{required}|…}}}}",
                    )
            width = columns[-1][0] + 1  # cells up to the last named column must be there
            any_row = False
            while True:
                start = reader.line_num + 1
                cells = next(reader, None)
                if cells is None:
                    break
                row_number = reader.line_num
                if any("\x00" in cell for cell in cells):
                    raise ImportFileError(
                        f"the file is not valid CSV (a NUL character at row {row_number}); "
                        "is it a spreadsheet saved in another format?",
                        row=row_number,
                    )
                if not any(cell.strip() for cell in cells):
                    continue
                any_row = True
                values = {name: cells[at] for at, name in columns if at < len(cells)}
                # Empty cells past the header's end are a trailing comma, not a shifted row.
                if len(cells) < width or any(cell.strip() for cell in cells[len(header) :]):
                    values["__shape__"] = f"{len(cells)} fields, header has {len(header)}"
                yield row_number, values
            if not any_row:
                raise ImportFileError("the file has a header row but no recipient rows", row=2)
        except UnicodeDecodeError as error:
            row = source.row_of(error)
            raise ImportFileError(
                f"the file is not UTF-8 text: row {row} holds the byte "
                f"0x{error.object[error.start]:02x}, which is not UTF-8 there (a file saved "
                f"as Latin-1 or Windows-1252?); {SAVE_AS}",
                row=row,
            ) from None
        except csv.Error as error:
            raise _csv_problem(error, start=start, line=reader.line_num) from None
        finally:
            text.detach()

    def _recipient(
        self, row_number: int, cells: dict[str, str], seen_in_file: set[str]
    ) -> tuple[str, dict[str, str]] | None:
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
        zone = cells.get("timezone", "").strip()
        if zone and (problem := zone_problem(zone)):
            self._invalid(row_number, zone, problem)
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
        return email, variables

    def _invalid(self, row_number: int, value: str, reason: str) -> None:
        self._report.invalid_count += 1
        if len(self._report.invalid) < MAX_INVALID_LISTED:
            self._report.invalid.append(
                InvalidRow(row=row_number, value=value[:254], reason=reason)
            )


def check_file(stream: BinaryIO, *texts: str) -> ImportReport:
    """Read a recipient file as importing it into a campaign whose subjects and messages
    are `texts` would, storing nothing, and raise what that import would raise. `accepted`
    counts the distinct valid addresses (suppressed ones included: only the store knows
    those)."""
    report = ImportReport()
    required = templates.required_variables(*texts)
    for _ in RecipientRows(stream, required=required, report=report):
        report.accepted += 1
    return report


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
        self._on_progress = on_progress
        required = templates.required_variables(*campaign.texts)
        self._recipients = RecipientRows(stream, required=required, report=report)
        # Each person gets every step: the first email, due once planned, and each
        # follow-up, waiting for the step before it to be sent. Each step's variants are
        # dealt in turn, continuing after the recipients already in: an even, reproducible
        # split that no ordering of the file can skew.
        self._steps = [
            (step, len(campaign.step_wordings(step)), status)
            for step, status in zip(
                campaign.steps,
                [TrackingStatus.PENDING, *[TrackingStatus.WAITING] * MAX_STEPS],
                strict=False,
            )
        ]
        self._dealt = campaign.total_recipients
        # Records are copies of this one (three times faster than building each: 200,000
        # rows). Its only mutable field, merge_variables, is replaced in every copy.
        self._blank = EmailTracking.model_construct(
            id="",
            campaign_id=campaign.campaign_id,
            user_id=campaign.user_id,
            mailbox_id=campaign.mailbox_id,
            recipient_email="",
            merge_variables={},
            status=TrackingStatus.PENDING,
            created_at=now,
            updated_at=now,
        )

    async def batches(self) -> AsyncIterator[list[EmailTracking]]:
        """The records of valid rows (each person's first email and follow-ups), about
        `BATCH_SIZE` people at a time; invalid rows go to the report."""
        batch: list[EmailTracking] = []
        for people, (email, variables) in enumerate(self._recipients, start=1):
            batch.extend(self._records(email, variables))
            if people % BATCH_SIZE == 0:
                yield batch
                batch = []
                self._progress()
        if batch:
            yield batch
        self._progress()

    def _progress(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self._stream.tell() if self._stream.seekable() else 0)

    def _records(self, email: str, variables: dict[str, str]) -> Iterator[EmailTracking]:
        # Every value here is ours or was just validated: skip re-validating 100,000 times.
        for step, variants, status in self._steps:
            update = {
                "id": new_object_id(),
                "recipient_email": email,
                "merge_variables": variables,
                "variant": self._dealt % variants,
                "step": step,
                "status": status,
                "timezone": variables.get("timezone") or None,
            }
            yield self._blank.model_copy(update=update)
        self._dealt += 1
