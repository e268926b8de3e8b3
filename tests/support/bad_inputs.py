"""Broken recipient files and request bodies, generated on the fly (nothing large is kept
in the repository): the corpus of the bad-input battery (docs/reliability.md, item 11).

Each `BadFile` says what is wrong with it and what a person must read in the refusal: the
fragments of the message, and the row the error names.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

HEADER = "email,first_name,company\n"


def recipient_row(number: int) -> str:
    """A valid row; addresses are unique per number."""
    return f"person{number}@example.com,Person {number},Company {number % 97}\n"


def rows(count: int, *, start: int = 0) -> Iterator[str]:
    """`count` valid rows."""
    for number in range(start, start + count):
        yield recipient_row(number)


def big_csv(count: int, *, bad_every: int = 0) -> bytes:
    """A header and `count` recipient rows; with `bad_every`, every bad_every-th row (from
    the bad_every-th on) has an address without an @-sign."""
    parts = [HEADER]
    for number in range(count):
        if bad_every and number % bad_every == bad_every - 1:
            parts.append(f"not-an-address-{number},Bad {number},Nowhere\n")
        else:
            parts.append(recipient_row(number))
    return "".join(parts).encode()


def big_csv_bad_rows(count: int, bad_every: int) -> list[int]:
    """The spreadsheet rows (header = 1) that `big_csv(count, bad_every=…)` makes invalid."""
    return [number + 2 for number in range(bad_every - 1, count, bad_every)]


@dataclass(frozen=True)
class BadFile:
    """A recipient file an import must refuse as a whole."""

    name: str
    problem: str
    data: bytes
    expect: tuple[str, ...]
    """Fragments the error message must contain (case-insensitive)."""
    row: int | None
    """The row the message names (None: a problem of the whole file or of its header)."""


def _small(text: str) -> str:
    return HEADER + text


def bad_files() -> list[BadFile]:
    """The corpus of refused files, small ones first."""
    sample = _small(recipient_row(1) + "zoe@example.com,Zoë,Café Müller\n")
    mega = "x" * 1_048_576  # 1 MiB: over the 1,000,000-character cell limit
    return [
        BadFile(
            "utf16-bom",
            "UTF-16 (little-endian) with a byte-order mark, as Excel's 'Unicode text'",
            codecs.BOM_UTF16_LE + sample.encode("utf-16-le"),
            ("UTF-16", "byte-order mark", "CSV UTF-8"),
            None,
        ),
        BadFile(
            "utf16-be-bom",
            "UTF-16 big-endian with a byte-order mark",
            codecs.BOM_UTF16_BE + sample.encode("utf-16-be"),
            ("UTF-16", "CSV UTF-8"),
            None,
        ),
        BadFile(
            "utf16-no-bom",
            "UTF-16 little-endian without a byte-order mark",
            sample.encode("utf-16-le"),
            ("UTF-16", "little-endian", "no byte-order mark"),
            None,
        ),
        BadFile(
            "utf16-be-no-bom",
            "UTF-16 big-endian without a byte-order mark",
            sample.encode("utf-16-be"),
            ("UTF-16", "big-endian"),
            None,
        ),
        BadFile(
            "latin-1",
            "Latin-1 text (Zoë, Café Müller) in row 3",
            sample.encode("latin-1"),
            ("not UTF-8", "row 3", "0xeb", "Latin-1"),
            3,
        ),
        BadFile(
            "latin-1-deep",
            "valid UTF-8 for 3,000 rows, then one Latin-1 byte in row 3,002",
            (HEADER + "".join(rows(3000)) + "late@example.com,Ren\xe9e,X\n").encode("latin-1"),
            ("not UTF-8", "row 3002", "0xe9"),
            3002,
        ),
        BadFile(
            "invalid-utf8",
            "a truncated UTF-8 sequence and a stray 0xff byte in row 2",
            HEADER.encode() + b"ann@example.com,An\xe2\x82,\xff\n",
            ("not UTF-8", "row 2"),
            2,
        ),
        BadFile(
            "xlsx",
            "an Excel workbook uploaded instead of CSV",
            b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + bytes(range(256)) * 4,
            ("Excel workbook", "CSV UTF-8"),
            None,
        ),
        BadFile(
            "missing-header",
            "no header row: the first row is a recipient",
            b"ann@example.com,Ann,Acme\nben@example.com,Ben,Acme\n",
            ("no 'email' column", "looks like a recipient", "add a header row"),
            None,
        ),
        BadFile(
            "semicolons",
            "separated by semicolons (a European spreadsheet's CSV)",
            b"email;first_name\nann@example.com;Ann\n",
            ("no 'email' column", "semicolons"),
            None,
        ),
        BadFile(
            "header-only",
            "a header and no recipient rows",
            HEADER.encode(),
            ("header row but no recipient rows",),
            None,
        ),
        BadFile(
            "header-and-blank-lines",
            "a header followed by blank lines only",
            (HEADER + "\n,,\n\n").encode(),
            ("no recipient rows",),
            None,
        ),
        BadFile(
            "empty",
            "an empty file",
            b"",
            ("the file is empty",),
            None,
        ),
        BadFile(
            "duplicate-columns",
            "the email column twice",
            b"email,first_name,Email\nann@example.com,Ann,ann2@example.com\n",
            ("two columns for 'email'", "column 1", "column 3"),
            None,
        ),
        BadFile(
            "columns-that-merge",
            "'First Name' and 'first_name' become the same variable",
            b"email,First Name,first_name\nann@example.com,Ann,Annie\n",
            ("two columns for 'first_name'", "'First Name'", "column 3"),
            None,
        ),
        BadFile(
            "one-mebibyte-cell",
            "a 1 MiB value in row 3",
            _small(recipient_row(1) + f"big@example.com,{mega},X\n").encode(),
            ("row 3", "longer than 1,000,000 characters"),
            3,
        ),
        BadFile(
            "nul-in-row",
            "a NUL character in row 3",
            _small(recipient_row(1) + "nul@example.com,A\x00B,X\n").encode(),
            ("NUL character at row 3",),
            3,
        ),
        BadFile(
            "nul-in-header",
            "a NUL character in the header",
            b"email,first\x00name\nann@example.com,Ann\n",
            ("NUL character at row 1",),
            1,
        ),
        BadFile(
            "unclosed-quote",
            "a quote opened in row 3 and never closed (it would swallow rows 4-52)",
            _small(
                recipient_row(1) + 'quote@example.com,"Ann,Acme\n' + "".join(rows(50, start=2))
            ).encode(),
            ("starts in row 3", "never closed"),
            3,
        ),
        BadFile(
            "unclosed-quote-long",
            "a quote opened in row 3 that swallows more than a megabyte of rows",
            _small(
                recipient_row(1) + 'quote@example.com,"Ann,Acme\n' + "".join(rows(30_000, start=2))
            ).encode(),
            ("starts in row 3", "never closed"),
            3,
        ),
        BadFile(
            "text-after-quote",
            'text after a closing quote in row 2: "Ann" Lee',
            _small('ann@example.com,"Ann" Lee,Acme\n').encode(),
            ("row 2", "quoted value is followed by more text"),
            2,
        ),
    ]


# -- request bodies -----------------------------------------------------------------------


@dataclass(frozen=True)
class BadBody:
    """A JSON body an endpoint must refuse with a 4xx naming the problem."""

    name: str
    body: bytes
    status: int
    expect: tuple[str, ...]
    field: str | None = None


def bad_campaign_bodies(mailbox_id: str, *, start: datetime) -> list[BadBody]:
    """Malformed and hostile bodies for POST /api/v1/campaigns; `start` is a start time the
    server would accept (in the future by its clock), so only the named flaw is wrong."""
    start_time = start.isoformat()
    good = (
        '{"mailbox_id": "%s", "campaign_name": "c", "subject": "s", "message": "m", '
        '"duration": %s, "start_time": "%s"%s}'
    )

    def campaign(duration: str = "1", extra: str = "") -> bytes:
        return (good % (mailbox_id, duration, start_time, extra)).encode()

    deep = 100_000
    return [
        BadBody("truncated", campaign()[:40], 422, ("not valid JSON",), "body"),
        BadBody("not-json", b"hello", 422, ("not valid JSON",), "body"),
        BadBody("empty", b"", 422, ("body",), "body"),
        BadBody("a-list", b"[1, 2, 3]", 422, ("must be an object, not an array",), "body"),
        BadBody(
            "wrong-types",
            (
                b'{"mailbox_id": 5, "campaign_name": ["c"], "subject": "s", "message": "m",'
                b' "duration": "soon", "start_time": "%s"}' % start_time.encode()
            ),
            422,
            ("mailbox_id",),
            "mailbox_id",
        ),
        BadBody(
            "nested-too-deep",
            b'{"campaign_name": ' + b"[" * deep + b"]" * deep + b"}",
            400,
            ("nested too deeply",),
            "body",
        ),
        BadBody(
            "a-5000-digit-number",
            campaign(extra=', "total_recipients": ' + "9" * 5000),
            400,
            ("number", "digits"),
            "body",
        ),
        BadBody(
            "a-40-digit-number",
            campaign(extra=', "total_recipients": ' + "9" * 40),
            422,
            ("less than or equal to 10000000",),
            "total_recipients",
        ),
        BadBody("infinite-duration", campaign("1e999"), 422, ("duration",), "duration"),
        BadBody("nan-duration", campaign("NaN"), 422, ("duration",), "duration"),
        BadBody("negative-duration", campaign("-5"), 422, ("duration", "greater than 0")),
        BadBody("not-utf8", b'{"campaign_name": "\xff\xfe"}', 400, ("not UTF-8",), "body"),
    ]
