"""What the inbox keeps of a reply: who wrote it, to whom, when, in answer to what; what the
person wrote, apart from the history their client quoted; its HTML made safe to show
(ammonia, through nh3: no script, no style, no image — so no tracking pixel and no `cid:`
reference —, links kept with `rel="noopener noreferrer nofollow"`); its attachments, kept
up to a size and otherwise listed. A message too large to read is kept as its headers, with
the reason (`problem`)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import Message
from email.utils import parsedate_to_datetime

import nh3

from mailramp.tracking.inbound.parts import header, ids, text_of
from mailramp.tracking.inbound.reply import split_quoted

TEXT_KEPT = 100_000
"""Characters of a reply's text (and of its quoted history) that are kept."""
HTML_KEPT = 300_000
"""Characters of a reply's sanitised HTML that are kept; longer, it is dropped (the text
stays)."""
ATTACHMENTS_KEPT = 10 * 1024 * 1024
"""Bytes of one message's attachments that are kept, first come first kept; the others are
listed, with their size, as not kept."""
MESSAGE_READ = 25 * 1024 * 1024
"""A larger message is kept as its headers only."""

SAFE_TAGS = frozenset(nh3.ALLOWED_TAGS) - {"img", "picture", "source", "video", "audio"}


@dataclass(frozen=True)
class Attachment:
    """A file a message carried: `data` None when it was over what is kept."""

    filename: str
    content_type: str
    size: int
    data: bytes | None


@dataclass
class MessageContent:
    """A reply as the inbox shows it."""

    sender: str
    to: str
    subject: str
    message_id: str | None
    in_reply_to: list[str]
    sent_at: datetime | None
    size: int
    text: str = ""
    quoted: str = ""
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    problem: str | None = None


def read_content(raw: bytes) -> MessageContent:
    """Read a message for the inbox (the module docstring says what is kept)."""
    message = message_from_bytes(raw[:MESSAGE_READ], policy=policy.compat32)
    own = ids(header(message, "Message-ID"))
    content = MessageContent(
        sender=header(message, "From")[:500],
        to=header(message, "To")[:2000],
        subject=header(message, "Subject")[:1000],
        message_id=own[0] if own else None,
        in_reply_to=ids(header(message, "In-Reply-To")) + ids(header(message, "References")),
        sent_at=_date(header(message, "Date")),
        size=len(raw),
    )
    if len(raw) > MESSAGE_READ:
        megabytes = len(raw) / 1024 / 1024
        content.problem = (
            f"the message is {megabytes:.1f} MB, over the {MESSAGE_READ // 1024 // 1024} MB "
            "the inbox keeps: read it in the mailbox"
        )
        return content
    try:
        plain, html = _bodies(message)
        written = text_of(plain) if plain is not None else (text_of(html) if html else "")
        new, history = split_quoted(written)
        content.text, content.quoted = new[:TEXT_KEPT], history[:TEXT_KEPT]
        if html is not None:
            safe = sanitised(_decoded(html))
            content.html = safe if len(safe) <= HTML_KEPT else None
        content.attachments = _attachments(message)
    except Exception as error:  # whatever a sender's client wrote, the headers stay
        content.problem = f"the message's body could not be read ({type(error).__name__})"
    return content


def sanitised(html: str) -> str:
    """HTML safe to show in the dashboard: what ammonia allows, minus anything that loads."""
    return nh3.clean(
        html,
        tags=set(SAFE_TAGS),
        clean_content_tags={"script", "style", "head", "title", "noscript", "template"},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def _bodies(message: Message) -> tuple[Message | None, Message | None]:
    """The first text/plain and the first text/html part that are not attachments."""
    plain = html = None
    for part in message.walk():
        if part.is_multipart() or _is_attachment(part):
            continue
        if part.get_content_type() == "text/plain" and plain is None:
            plain = part
        elif part.get_content_type() == "text/html" and html is None:
            html = part
    return plain, html


def _attachments(message: Message) -> list[Attachment]:
    found: list[Attachment] = []
    kept = 0
    for part in message.walk():
        if part.is_multipart() or not _is_attachment(part):
            continue
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        fits = kept + len(data) <= ATTACHMENTS_KEPT
        kept += len(data) if fits else 0
        found.append(
            Attachment(
                filename=_filename(part, len(found) + 1),
                content_type=part.get_content_type(),
                size=len(data),
                data=data if fits else None,
            )
        )
    return found


def _is_attachment(part: Message) -> bool:
    if part.get_content_disposition() == "attachment" or _filename(part, 0) != "attachment-0":
        return True
    return part.get_content_maintype() not in ("text", "multipart", "message")


def _filename(part: Message, number: int) -> str:
    name = ""
    with contextlib.suppress(Exception):  # a name in an encoding the parser cannot read
        name = str(part.get_filename() or "")
    # Raw 8-bit bytes in the header come back as surrogates: read them as UTF-8.
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    name = name.replace("/", "_").replace("\\", "_").strip()[:200]
    return name or f"attachment-{number}"


def _decoded(part: Message) -> str:
    raw = part.get_payload(decode=True)
    raw = raw if isinstance(raw, bytes) else b""
    try:
        return raw.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


def _date(value: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
