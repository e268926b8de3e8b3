"""Personalisation: `{{first_name}}` and `{{first_name|there}}` in subject and body.

Deliberately not a template language: placeholders are replaced by values and nothing a
user writes is ever executed. In HTML bodies values are HTML-escaped; in headers, line
breaks in values become spaces (no header injection).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|([^{}]*))?\}\}")


@dataclass(frozen=True)
class Placeholder:
    """One `{{name}}` or `{{name|default}}`."""

    name: str
    default: str | None


def placeholders(*texts: str) -> list[Placeholder]:
    """Every placeholder in the texts, in order of appearance."""
    found = []
    for text in texts:
        for match in PLACEHOLDER.finditer(text):
            default = match.group(2)
            found.append(
                Placeholder(
                    match.group(1).lower(), default.strip() if default is not None else None
                )
            )
    return found


def required_variables(*texts: str) -> list[str]:
    """Variables used at least once without a default: every recipient must have them."""
    required: dict[str, None] = {}
    for placeholder in placeholders(*texts):
        if placeholder.default is None:
            required[placeholder.name] = None
    return list(required)


def variable_name(column: str) -> str:
    """A CSV header as a variable name: `First Name` → `first_name`."""
    return re.sub(r"[^a-z0-9_]+", "_", column.strip().lower()).strip("_")


def missing_variables(required: Iterable[str], values: Mapping[str, object]) -> list[str]:
    """Required variables that are absent or blank in `values`."""
    return [name for name in required if not str(values.get(name) or "").strip()]


def render(
    text: str,
    values: Mapping[str, object],
    *,
    escape_html: bool = False,
    escape: Callable[[str], str] | None = None,
) -> str:
    """`text` with each placeholder replaced by its value, or its default, or ''; values
    HTML-escaped with `escape_html`, or passed through `escape` (e.g. URL quoting)."""

    def replace(match: re.Match[str]) -> str:
        value = str(values.get(match.group(1).lower()) or "").strip()
        if not value:
            value = (match.group(2) or "").strip()
        if escape is not None:
            return escape(value)
        return html.escape(value) if escape_html else value

    return PLACEHOLDER.sub(replace, text)


def render_header(text: str, values: Mapping[str, object]) -> str:
    """A header value: rendered, with line breaks folded to spaces."""
    return " ".join(render(text, values).split())
