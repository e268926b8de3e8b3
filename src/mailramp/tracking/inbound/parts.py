"""Reading the parts of a message that came back, whatever state it is in: text in any
charset (or a wrong one), HTML as text, the returned original message wherever the
reporting server put it, and the addresses in a text."""

from __future__ import annotations

import contextlib
import html
import re
from email import message_from_bytes, message_from_string, policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses

MESSAGE_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>|<[^<>\s]{6,}>")
ADDRESS = re.compile(
    r"(?<![\w.!#$%&'*+/=?^`{|}~@-])"
    r"([\w.!#$%&'*+/=?^`{|}~-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
    r"(?![\w-]*@)"
)
# Who writes bounces rather than being mailed (postmaster may be mailed too).
MAILER_DAEMONS = frozenset({"mailer-daemon", "mailer_daemon", "mailerdaemon", "mail-daemon"})
DAEMON_LOCAL_PARTS = MAILER_DAEMONS | {"postmaster"}
_PREFIX = re.compile(r"^(?:smtp|rfc822)[=:;]", re.IGNORECASE)  # Exchange's "SMTP=a@b"
_TAGS = re.compile(r"<(?:br|/p|/div|/tr|/li|/h\d)\b[^>]*>", re.IGNORECASE)
_ANY_TAG = re.compile(r"<[^>]*>")
_HIDDEN = re.compile(r"<(style|script|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
RETURNED_TYPES = frozenset(
    {
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/global-headers",
    }
)
HEADER_TYPES = frozenset(
    {"text/rfc822-headers", "message/rfc822-headers", "message/global-headers"}
)


def ids(value: object) -> list[str]:
    """The Message-IDs in a header value, in order."""
    return MESSAGE_ID.findall(str(value or ""))


def header(message: Message, name: str) -> str:
    """A header's value as text, encoded words decoded ('' when it is missing)."""
    value = message.get(name)
    if value is None:
        return ""
    text = str(value)
    if "=?" in text:
        with contextlib.suppress(UnicodeError, LookupError, ValueError, HeaderParseError):
            text = str(make_header(decode_header(text)))  # else shown as written
    return text.strip()


def address_of(value: str) -> str | None:
    """The (lowercased) address in a header value such as `Name <a@b>`."""
    for _, address in getaddresses([value]):
        address = address.strip().strip("<>").rpartition(":")[2]  # <@relay:a@b>: a source route
        if "@" in address and not address.startswith("@"):
            return address.lower()
    found = ADDRESS.search(value)
    return found.group(1).lower() if found else None


def is_daemon(address: str | None) -> bool:
    """Whether an address is a mail system's (MAILER-DAEMON, postmaster)."""
    return address is not None and address.split("@", 1)[0].lower() in DAEMON_LOCAL_PARTS


def text_of(part: Message) -> str:
    """A text part's content as str, whatever charset it claims; HTML turned into text."""
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        payload = part.get_payload()
        raw = payload.encode("utf-8", "replace") if isinstance(payload, str) else b""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = raw.decode(charset, "replace")
    except LookupError:  # an unknown charset name
        text = raw.decode("utf-8", "replace")
    if part.get_content_subtype() == "html":
        text = _HIDDEN.sub("", text)
        text = html.unescape(_ANY_TAG.sub("", _TAGS.sub("\n", text)))
    return text


def report_parts(message: Message) -> list[Message]:
    """The parts that are the report itself: every text part, outside the returned
    original message (its parts are the sender's words, not the server's)."""
    found: list[Message] = []

    def visit(part: Message) -> None:
        content_type = part.get_content_type()
        if content_type in RETURNED_TYPES:
            return
        payload = part.get_payload()
        if isinstance(payload, list):
            for inner in payload:
                if isinstance(inner, Message):
                    visit(inner)
        elif part.get_content_maintype() in ("text", "multipart"):
            found.append(part)  # a multipart whose boundary the parser missed is text too

    visit(message)
    plain = [part for part in found if part.get_content_subtype() != "html"]
    return plain or found


def returned_headers(message: Message, report: str) -> Message | None:
    """The headers of the original message the report returns: an attached message, its
    headers part, or the header block that follows a "copy of the message" line."""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                return inner
        if content_type in HEADER_TYPES:
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                return message_from_bytes(raw.lstrip(), policy=policy.compat32)
    quoted = quoted_original(report)
    if quoted:
        return message_from_string(quoted, policy=policy.compat32)
    return None


# Where a notice starts quoting the original: a separator line that says so ("------ This
# is a copy of the message ------", qmail's "--- Below this line is a copy of the
# message."), or a line that is only such a statement ("Message headers follow.").
_QUOTE_WORDS = (
    r"(?:below this line is )?(?:a )?copy of (?:the |your )?(?:original )?message"
    r"|(?:the )?(?:original|returned|unsent|undelivered|rejected) (?:message|mail|e-?mail)"
    r"(?: header[s]?)?(?: (?:follows?|is (?:attached|below|included)|below))?"
    r"|message headers follow|headers? of the original(?: message)?|returned mail follows"
    r"|original message follows"
)
_COPY_MARKER = re.compile(
    rf"^[ \t]*(?:[-=*_#]{{2,}}[ \t]*[^\n]{{0,40}}?(?:{_QUOTE_WORDS})[^\n]*"
    rf"|(?:{_QUOTE_WORDS})[ \t]*[.:]?[ \t]*(?:[-=*_#]{{2,}})?[ \t]*)$",
    re.IGNORECASE | re.MULTILINE,
)
# A block of three or more header fields (any names, folded lines allowed), one of them a
# field a sent message has and a notice's summary of it ("To: / Subject: / Sent:") lacks:
# the quoted headers of the original.
_HEADER_BLOCK = re.compile(
    r"^(?:[A-Za-z][A-Za-z0-9-]{0,60}:[^\n]*\n(?:[ \t]+[^\n]*\n)*){3,}", re.MULTILINE
)
_ORIGINAL_FIELD = re.compile(
    r"^(?:message-id|from|received|return-path):", re.IGNORECASE | re.MULTILINE
)
_MESSAGE_ID_FIELD = re.compile(
    r"^[ \t>]*message-id:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE
)


def _header_block(text: str) -> re.Match[str] | None:
    return next(
        (block for block in _HEADER_BLOCK.finditer(text) if _ORIGINAL_FIELD.search(block[0])),
        None,
    )


def quoted_message_ids(text: str) -> list[str]:
    """The Message-IDs in `Message-ID:` lines of a text (headers quoted in a notice)."""
    return _MESSAGE_ID_FIELD.findall(text)


def split_report(text: str) -> tuple[str, str]:
    """(the server's report, the quoted original after it) of a plain-text bounce: the
    original starts at a "copy of the message" line, or at a block of three or more header
    lines."""
    marker = _COPY_MARKER.search(text)
    block = _header_block(text)
    cut = min((found.start() for found in (marker, block) if found is not None), default=len(text))
    return text[:cut], text[cut:]


def quoted_original(report: str) -> str | None:
    """The header block of an original message quoted after a report's text, if any."""
    block = _header_block(report)
    return block.group(0) if block else None


def addresses(text: str) -> list[str]:
    """The addresses in `text`, lowercased, in order, each once; addresses inside a URL
    and MAILER-DAEMON's are left out."""
    seen: list[str] = []
    for match in ADDRESS.finditer(text):
        token = text[text.rfind(" ", 0, match.start()) + 1 : match.start()]
        if "://" in token or "?" in token or "&" in token:
            continue  # a link's parameter, not an address the text names
        address = _PREFIX.sub("", match.group(1).strip(".'\"`")).lower()
        if address not in seen and address.split("@", 1)[0] not in MAILER_DAEMONS:
            seen.append(address)
    return seen
