"""Spintax — `{Hi|Hello|Hey}` becomes one of its options, chosen per recipient — and the
check that finds what in a template is neither text nor a well-formed tag.

The same recipient always gets the same choices (the seed names the campaign, the person
and the step), so a preview, a resend and the click resolver all see the email that was
sent. Options nest (`{Hi|Hello {there|friend}}`) and may hold merge tags (`{Hi
{{first_name}}|Hello}`), which are filled in after the spin.

Braces are common in HTML email (`<style>` rules), so a `{…}` group without a `|` at its
own level is text, braces and all, and a stray `}` is text too. What a sender surely did not
mean is an error, with its line and column: a spintax group that is never closed, and a
`{{` that does not start a merge tag (`{{first name}}`, `{{first_name}`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from mailramp.campaigns.templates import PLACEHOLDER


@dataclass(frozen=True)
class TemplateProblem:
    """Something in a template that is neither text nor a well-formed tag."""

    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


@dataclass
class _Group:
    """A `{…}` group: its options (one unless it holds a `|` at its own level)."""

    start: int
    options: list[list[str | _Group]] = field(default_factory=lambda: [[]])
    closed: bool = False

    @property
    def is_spintax(self) -> bool:
        return len(self.options) > 1


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _snippet(text: str, offset: int, *, until: str = "") -> str:
    """What starts at `offset`: through `until` when it comes soon, else 24 characters."""
    end = text.find(until, offset) + len(until) if until else -1
    if not until or end < len(until) or end - offset > 40:
        end = offset + 24
    piece = text[offset:end].split("\n", 1)[0]
    return piece + ("…" if end == offset + 24 and len(text) > end else "")


def _parse(text: str) -> tuple[list[str | _Group], list[TemplateProblem]]:
    top: list[str | _Group] = []
    stack: list[_Group] = []
    problems: list[TemplateProblem] = []

    def current() -> list[str | _Group]:
        return stack[-1].options[-1] if stack else top

    i = 0
    while i < len(text):
        char = text[i]
        if text.startswith("{{", i):
            tag = PLACEHOLDER.match(text, i)
            if tag is None:
                written = _snippet(text, i, until="}}")
                problems.append(
                    TemplateProblem(
                        *_position(text, i),
                        f"{written!r} is not a merge tag: write {{{{name}}}} or "
                        "{{name|default}} (letters, digits and _ only)",
                    )
                )
                current().append("{{")
                i += 2
                continue
            current().append(tag.group(0))
            i = tag.end()
        elif char == "{":
            group = _Group(i)
            current().append(group)
            stack.append(group)
            i += 1
        elif char == "|" and stack:
            stack[-1].options.append([])
            i += 1
        elif char == "}" and stack:
            stack.pop().closed = True
            i += 1
        else:
            current().append(char)
            i += 1
    for group in stack:
        if group.is_spintax:
            problems.append(
                TemplateProblem(
                    *_position(text, group.start),
                    f"the spintax {_snippet(text, group.start)!r} is never closed: end it with }}",
                )
            )
    return top, problems


def template_problems(text: str) -> list[TemplateProblem]:
    """What in `text` is neither text nor a well-formed merge tag or spintax group."""
    return _parse(text)[1]


def spin(text: str, seed: str) -> str:
    """`text` with each spintax group replaced by one of its options, the same ones for the
    same seed; merge tags are left for `templates.render`. Text without spintax comes back
    unchanged, and so does text with problems (refused when the campaign was saved)."""
    if "|" not in text:
        return text
    nodes, problems = _parse(text)
    if problems:
        return text
    choose = random.Random(seed)  # noqa: S311 - a varied wording, not a secret
    return _emit(nodes, choose)


def _emit(nodes: list[str | _Group], choose: random.Random) -> str:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif node.is_spintax:
            out.append(_emit(node.options[choose.randrange(len(node.options))], choose))
        else:
            out.append("{" + _emit(node.options[0], choose) + ("}" if node.closed else ""))
    return "".join(out)
