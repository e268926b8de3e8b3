"""What a person (or their auto-responder) wrote in a reply, without the quoted history:
the first text part of the message (HTML read as text), cut where the client starts
quoting ("On Mon, Ann wrote:", "-----Original Message-----", Outlook's "From: … Sent: …"
block, their French, German, Spanish and Dutch forms) and without `>`-quoted lines."""

from __future__ import annotations

import re
from email.message import Message

from mailramp.tracking.inbound.parts import report_parts, text_of

REPLY_TEXT = 2_000  # characters kept: enough to read, small enough to keep for every reply

_QUOTE_STARTS = re.compile(
    r"^[ \t]*(?:"
    r"on\b[^\n]{0,300}?\bwrote:"  # On Mon, 1 Mar 2027 at 09:00, Ann <ann@acme.com> wrote:
    r"|le\b[^\n]{0,300}?a écrit\s*:"
    r"|am\b[^\n]{0,300}?schrieb[^\n]{0,100}:"
    r"|el\b[^\n]{0,300}?escribió\s*:"
    r"|op\b[^\n]{0,300}?schreef[^\n]{0,100}:"
    r"|-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine|mensaje original"
    r"|oorspronkelijk bericht)\s*-{2,}"
    r"|_{5,}\s*$"  # Outlook's rule above its From/Sent block
    r"|(?:from|von|de|van):[^\n]*\n[ \t]*(?:sent|date|gesendet|envoyé|enviado|verzonden):"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def reply_text(message: Message) -> str | None:
    """The new text of a reply (see the module docstring), at most REPLY_TEXT characters;
    None when it has no text part."""
    parts = report_parts(message)
    if not parts:
        return None
    kept, _ = split_quoted(text_of(parts[0]))
    if len(kept) > REPLY_TEXT:
        kept = kept[: REPLY_TEXT - 1].rstrip() + "…"
    return kept or None


def split_quoted(text: str) -> tuple[str, str]:
    """A reply's text as (what the person wrote, the history their client quoted): cut
    where the client starts quoting, `>`-quoted lines moved to the history."""
    text = text.replace("\r\n", "\n")
    quote = _QUOTE_STARTS.search(text)
    history = ""
    if quote is not None:
        text, history = text[: quote.start()], text[quote.start() :]
    lines = text.split("\n")
    quoted = [line for line in lines if line.lstrip().startswith(">")]
    kept = "\n".join(line for line in lines if not line.lstrip().startswith(">"))
    history = "\n".join([*quoted, history.strip()]).strip() if quoted else history.strip()
    return _BLANK_LINES.sub("\n\n", kept).strip(), history
