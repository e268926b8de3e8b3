"""The operator documents say what the product does (issue 28, item 6): every `mailramp …`
command they show exists with the options they give it; every schema revision they name
is one the code knows, and those shown as the current one (`database at revision …`,
`schema_head`, `… needs …`) are the newest; `/healthz`'s statuses answer the HTTP codes the
table says; every exit status they name is one the CLI uses, with the meaning cli.md gives.
(The settings they name are checked by test_configuration_docs.py.)

When a command, an option, a migration or a code changes, this fails naming the document,
its line and what it says, and what the code has instead."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
from prometheus_client import generate_latest

from mailramp.cli.common import (
    EXIT_CONFIGURATION,
    EXIT_CONFLICT,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
)
from mailramp.cli.main import app
from mailramp.observability import QUEUE_STATES, Telemetry
from mailramp.sending.models import Outcome
from mailramp.storage.mongo.base import KNOWN_VERSIONS, SCHEMA_VERSION
from mailramp.storage.sql.migrate import head_revision, known_revisions
from mailramp.web.health import HEALTH_STATUSES

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "docs" / name
    for name in (
        "deployment.md",
        "troubleshooting.md",
        "observability.md",
        "cli.md",
        "getting-started.md",
    )
]
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_REFUSED: "refused",
    EXIT_USAGE: "usage",
    EXIT_NOT_FOUND: "not found",
    EXIT_CONFLICT: "conflict",
    EXIT_CONFIGURATION: "configuration",
    EXIT_INTERRUPTED: "interrupted",
}
SQL_REVISION = re.compile(r"\b(\d{4}_[a-z][a-z0-9_]*)\b")
MONGO_REVISION = re.compile(r"\b(mongo-\d{4})\b")
# Where a document shows the revision a current install is at, or needs.
CURRENT = [
    re.compile(r"database at revision (\S+) \("),
    re.compile(r'"schema_head": ?"([^"]+)"'),
    re.compile(r"but this mailramp needs (\S+?):"),
    re.compile(r"\(schema (\S+) on SQL, (\S+) on MongoDB\)"),
]
# A command as typed: `mailramp` starting a code span or a line of a code block (after a
# prompt, variable assignments, `sudo -u USER` or a path to the venv's bin/), or after a
# shell operator; then its words, up to the end of the span or the next operator. (Output
# shown in a block — `error: … this mailramp needs …` — is not a command.)
COMMAND = re.compile(
    r"(?:^|&&|\|\||;|\$\(|\|)\s*(?:\$ )?(?:[A-Z_][A-Z0-9_]*=\S+\s+)*(?:sudo -u \S+\s+)?"
    r"(?:\S*/bin/)?mailramp((?: +[^\s`|;&)>#]+)*)"
)
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}
EXIT = re.compile(r"\bexit(?: status| code)? (\d+)\b")


@dataclass(frozen=True)
class Line:
    document: str
    number: int
    text: str

    def __str__(self) -> str:
        return f"{self.document}:{self.number}: {self.text.strip()[:160]}"


def lines() -> Iterator[Line]:
    for path in DOCS:
        for number, text in enumerate(path.read_text().splitlines(), start=1):
            yield Line(path.name, number, text)


SHELL = ("sh", "bash", "shell", "console")


def code_lines() -> Iterator[tuple[Line, str, bool]]:
    """Each line's code: its `code spans`, or the whole line inside a ``` block; and
    whether it is shell (a span, or a block marked sh/bash/console: operators start
    commands too) or a block of other text (output: only a line starting with a command
    is one)."""
    for path in DOCS:
        fence: str | None = None
        for number, text in enumerate(path.read_text().splitlines(), start=1):
            stripped = text.lstrip()
            if stripped.startswith("```"):
                fence = None if fence is not None else stripped[3:].strip()
                continue
            line = Line(path.name, number, text)
            if fence is not None:
                yield line, text, fence in SHELL
            else:
                for span in re.findall(r"`([^`]+)`", text):
                    yield line, span, True


def resolve(words: list[str]) -> tuple[Any, list[str], list[str]] | None:
    """The command `words` name, its path, and the words after it (None: no command —
    `mailramp` used as a word)."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = list(words)
    while rest and hasattr(command, "commands"):  # a group (Typer vendors its own click)
        sub = command.commands.get(rest[0])
        if sub is None:
            break
        command, path = sub, [*path, rest.pop(0)]
    return command, path, rest


def options_of(command: Any) -> set[str]:
    names = {"--help"}
    for parameter in command.params:
        names.update(getattr(parameter, "opts", []))
        names.update(getattr(parameter, "secondary_opts", []))
    return names


def test_every_command_shown_exists_with_the_options_shown() -> None:
    wrong: list[str] = []
    checked = 0
    for line, code, shell in code_lines():
        found = COMMAND.finditer(code) if shell else [COMMAND.match(code)]
        for match in found:
            if match is None:
                continue
            words = [w.strip("[]") for w in match.group(1).split()]
            words = [w for w in words if w and w not in ("\\", "…", "...")]
            # Nothing after it, a placeholder (`mailramp COMMAND --help`) or a version
            # printed (`mailramp 0.1.0+g…`): not a command to check.
            if not words or words[0].isupper() or words[0][:1].isdigit():
                continue
            resolved = resolve(words)
            assert resolved is not None
            command, path, rest = resolved
            root = not path
            if root and not rest[0].startswith("-"):
                wrong.append(f"{line}\n  no command `mailramp {rest[0]}`")
                continue
            checked += 1
            known = options_of(command) | ({"--version"} if root else set())
            for word in rest:
                option = word.split("=", 1)[0]
                if option.startswith("--") and option not in known:
                    shown = " ".join(["mailramp", *path])
                    wrong.append(f"{line}\n  `{shown}` has no option {option}")
    assert wrong == [], "\n".join(wrong)
    assert checked > 40  # the documents show dozens of commands


def test_every_revision_named_exists_and_the_current_ones_are_the_newest() -> None:
    sql, mongodb = known_revisions(), set(KNOWN_VERSIONS)
    wrong: list[str] = []
    for line in lines():
        for name in SQL_REVISION.findall(line.text):
            if name not in sql and not name.startswith("0099_"):
                wrong.append(f"{line}\n  no migration {name} (the newest is {head_revision()})")
        for name in MONGO_REVISION.findall(line.text):
            if name not in mongodb:
                wrong.append(f"{line}\n  no MongoDB layout {name} (the newest is {SCHEMA_VERSION})")
        for pattern in CURRENT:
            for found in pattern.findall(line.text):
                for name in (found,) if isinstance(found, str) else found:
                    newest = SCHEMA_VERSION if name.startswith("mongo-") else head_revision()
                    if name != newest:
                        wrong.append(f"{line}\n  shows {name} as current; it is {newest}")
    assert wrong == [], "\n".join(wrong)


def test_healthz_statuses_answer_the_codes_the_table_says() -> None:
    text = (ROOT / "docs" / "observability.md").read_text()
    table = dict(re.findall(r"^\| `(\w+)` \| (\d{3}) \|", text, flags=re.MULTILINE))
    assert {name: int(code) for name, code in table.items()} == HEALTH_STATUSES


def test_exit_codes_named_are_the_clis() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    table = {
        int(code): meaning
        for code, meaning in re.findall(r"^\| (\d+) \| ([^|]+) \|", text, flags=re.MULTILINE)
    }
    assert set(table) == set(EXIT_CODES)
    for code, word in EXIT_CODES.items():
        assert word in table[code].lower(), f"cli.md: exit {code} is {table[code]!r}"
    wrong = [
        f"{line}\n  exit {code} is no exit code of the CLI"
        for line in lines()
        for code in map(int, EXIT.findall(line.text))
        if code not in EXIT_CODES
    ]
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize(
    ("words", "path"),
    [(["db", "upgrade"], ["db", "upgrade"]), (["campaign", "nope"], ["campaign"])],
)
def test_resolve_walks_the_command_tree(words: list[str], path: list[str]) -> None:
    resolved = resolve(words)
    assert resolved is not None and resolved[1] == path


OBSERVABILITY = ROOT / "docs" / "observability.md"
SAMPLE = re.compile(r"^(\w+?)(?:_bucket|_count|_sum|_created|_total)?(?:\{(.*)\})? ")
LABEL = re.compile(r'(\w+)="([^"]*)"')
FREE_VALUES = {"version", "schema", "mailbox_id", "le"}  # any value: described, not listed


def documented_metrics() -> dict[str, tuple[str, set[str], str]]:
    """observability.md's metrics table: name → (type, label names, meaning)."""
    rows = {}
    for text in OBSERVABILITY.read_text().splitlines():
        cells = [cell.strip() for cell in text.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`mailramp_"):
            labels = set(re.findall(r"`(\w+)`", cells[2]))
            rows[cells[0].strip("`")] = (cells[1], labels, cells[3])
    return rows


def test_every_metric_its_labels_and_their_values_are_in_observability_md() -> None:
    """Each metric a process exports (read from a fresh registry: every label value the
    counters start at 0 is in it) has its row with its type and labels, and the row names
    each value those labels take; the queue's states, set at a scrape, likewise."""
    exported = generate_latest(Telemetry(schema="0000_x").registry).decode()
    types = dict(re.findall(r"^# TYPE (mailramp_\w+) (\w+)$", exported, re.M))
    values: dict[str, set[str]] = {}
    for text in exported.splitlines():
        found = SAMPLE.match(text)
        if found and found.group(1).startswith("mailramp_"):
            for label, value in LABEL.findall(found.group(2) or ""):
                if label not in FREE_VALUES:
                    values.setdefault(found.group(1), set()).add(f"{label}={value}")
    values.setdefault("mailramp_queue_depth", set()).update(f"state={s}" for s in QUEUE_STATES)
    rows = documented_metrics()
    wrong = []
    for name, kind in sorted(types.items()):
        base = re.sub(r"_total$", "", name)
        row = rows.get(name)
        if row is None:
            wrong.append(f"{name} ({kind}) has no row")
            continue
        if row[0] != kind:
            wrong.append(f"{name}: documented as {row[0]!r}, exported as {kind!r}")
        labels = {pair.split("=")[0] for pair in values.get(base, ())}
        if not labels <= row[1]:
            wrong.append(f"{name}: labels {sorted(labels - row[1])} not in its row")
        for pair in sorted(values.get(base, ())):
            if f"`{pair.split('=')[1]}`" not in row[2]:
                wrong.append(f"{name}: {pair} is not named in its row")
    wrong += [f"{name}: documented, not exported" for name in rows.keys() - types.keys()]
    assert wrong == [], "\n".join(wrong)


def logged_fields() -> dict[str, set[str]]:
    """The `extra=` fields of every log call in the code, by module (a `**spread` of the
    worker's counts is read as what it holds: each outcome, and `released`)."""
    fields: dict[str, set[str]] = {}
    for path in (ROOT / "src" / "mailramp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            extra = next((k.value for k in node.keywords if k.arg == "extra"), None)
            if node.func.attr not in LOG_METHODS or not isinstance(extra, ast.Dict):
                continue
            names = fields.setdefault(path.stem, set())
            for key in extra.keys:
                if isinstance(key, ast.Constant):
                    names.add(str(key.value))
                else:  # **counts
                    names |= {outcome.value for outcome in Outcome} | {"released"}
    return fields


def test_every_log_field_is_in_observability_md() -> None:
    logs = OBSERVABILITY.read_text().split("## Logs", 1)[1]
    fields = logged_fields()
    assert fields, "no log call with extra= found: the test reads the wrong thing"
    missing = [
        f"{module}: {name}"
        for module, names in sorted(fields.items())
        for name in sorted(names)
        if f"`{name}`" not in logs and f'"{name}":' not in logs
    ]
    assert missing == [], "\n".join(missing)
