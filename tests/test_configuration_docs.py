"""docs/configuration.md documents every setting, with its real variable names and default.

The document holds markdown tables with the header `Variable | Type | Default | Description`.
Each row documents one field of `Settings`: the Variable cell lists every environment
variable that sets it (in backticks), the Default cell is the default in backticks, or
`unset` for None, or `empty` for "". The tests read those rows and compare them with
`Settings.model_fields`, so a setting added, renamed or given a new default without the
document following fails here, naming it. A `MAILRAMP_…` variable named anywhere in the
operator documents must be a setting (or one the scripts in scripts/ read).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices, AliasPath, SecretStr
from pydantic.fields import FieldInfo

from mailramp.config import Settings

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION = ROOT / "docs" / "configuration.md"
# The operator documents: a variable they name must be a setting that exists.
OPERATOR_DOCS = [
    CONFIGURATION,
    *(
        ROOT / "docs" / name
        for name in (
            "getting-started.md",
            "deployment.md",
            "metrics.md",
            "observability.md",
            "cli.md",
            "security.md",
            "troubleshooting.md",
        )
    ),
]
HEADER = ["Variable", "Type", "Default", "Description"]
VARIABLE = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
MENTIONED = re.compile(r"\bMAILRAMP_[A-Z0-9_]+\b")
# Read by the test suite, not by Settings.
NOT_SETTINGS_PREFIXES = ("MAILRAMP_TEST_",)


@dataclass(frozen=True)
class Row:
    """One documented setting."""

    line: int
    variables: tuple[str, ...]
    default: str
    description: str


def _cells(line: str) -> list[str]:
    # `\|` is a literal bar inside a cell.
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [cell.strip().replace("\\|", "|") for cell in cells]


def documented_rows(text: str) -> list[Row]:
    """The rows of every `Variable | Type | Default | Description` table."""
    rows: list[Row] = []
    in_table = False
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.lstrip().startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if cells == HEADER:
            in_table = True
            continue
        if not in_table or all(set(cell) <= set("-: ") for cell in cells):
            continue
        assert len(cells) == len(HEADER), f"line {number}: expected {len(HEADER)} cells: {line}"
        variable, _type, default, description = cells
        rows.append(
            Row(
                line=number,
                variables=tuple(name.upper() for name in VARIABLE.findall(variable)),
                default=default,
                description=description,
            )
        )
    return rows


def environment_names(name: str, field: FieldInfo) -> tuple[str, ...]:
    """The environment variables pydantic-settings reads for a field (upper case)."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        names = [choice for choice in alias.choices if isinstance(choice, str)]
    elif isinstance(alias, str):
        names = [alias]
    elif isinstance(alias, AliasPath):
        names = [str(alias.path[0])]
    elif field.alias:
        names = [field.alias]
    else:
        names = [f"{Settings.model_config.get('env_prefix', '')}{name}"]
    return tuple(n.upper() for n in names)


def default_of(field: FieldInfo) -> Any:
    """The value a field has when nothing sets it."""
    return field.get_default(call_default_factory=True, validated_data={})


def matches(documented: str, value: Any) -> bool:
    """Whether the Default cell says `value`."""
    if value is None:
        return documented == "unset"
    if value == "":
        return documented == "empty"
    literal = re.fullmatch(r"`([^`]*)`", documented)
    if literal is None:
        return False
    shown = literal.group(1)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return shown == ("true" if value else "false")
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, int | float):
        try:
            return float(shown) == float(value)
        except ValueError:
            return False
    if isinstance(value, list | tuple | dict | set | frozenset):
        as_list = sorted(value) if isinstance(value, set | frozenset) else value
        return shown == json.dumps(as_list)
    return shown == str(value)


def _settings_fields() -> dict[str, FieldInfo]:
    return dict(Settings.model_fields)


def test_the_document_has_a_settings_table() -> None:
    rows = documented_rows(CONFIGURATION.read_text(encoding="utf-8"))
    assert rows, f"no `{' | '.join(HEADER)}` table in {CONFIGURATION}"


def test_every_setting_is_documented_with_all_its_variables() -> None:
    rows = documented_rows(CONFIGURATION.read_text(encoding="utf-8"))
    problems = []
    for name, field in _settings_fields().items():
        names = environment_names(name, field)
        found = [row for row in rows if set(names) & set(row.variables)]
        if not found:
            problems.append(f"{name}: {', '.join(names)} not in a settings table")
        elif len(found) > 1:
            lines = ", ".join(str(row.line) for row in found)
            problems.append(f"{name}: documented in more than one row (lines {lines})")
        elif set(found[0].variables) != set(names):
            problems.append(
                f"{name}: line {found[0].line} lists {', '.join(found[0].variables)}; "
                f"the variables are {', '.join(names)}"
            )
        elif not found[0].description:
            problems.append(f"{name}: line {found[0].line} has no description")
    assert not problems, "docs/configuration.md is out of date:\n" + "\n".join(problems)


def script_variables() -> set[str]:
    """`MAILRAMP_…` variables the scripts in scripts/ read (e.g. MAILRAMP_SKIP_DEMO)."""
    return {
        name
        for script in (ROOT / "scripts").iterdir()
        if script.is_file()
        for name in MENTIONED.findall(script.read_text(encoding="utf-8", errors="replace"))
    }


def test_every_documented_variable_exists() -> None:
    known = {
        n for name, field in _settings_fields().items() for n in environment_names(name, field)
    }
    mentionable = known | script_variables()
    problems = []
    for row in documented_rows(CONFIGURATION.read_text(encoding="utf-8")):
        problems += [
            f"{CONFIGURATION.name}:{row.line}: {variable} is not a setting"
            for variable in row.variables
            if variable not in known
        ]
    for document in OPERATOR_DOCS:
        if not document.exists():
            continue
        for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
            problems += [
                f"{document.name}:{number}: {variable} is neither a setting nor read by scripts/"
                for variable in MENTIONED.findall(line)
                if variable not in mentionable and not variable.startswith(NOT_SETTINGS_PREFIXES)
            ]
    assert not problems, "documented variables that do not exist:\n" + "\n".join(problems)


def test_documented_defaults_are_the_real_defaults() -> None:
    rows = documented_rows(CONFIGURATION.read_text(encoding="utf-8"))
    problems = []
    for name, field in _settings_fields().items():
        names = set(environment_names(name, field))
        for row in rows:
            if names & set(row.variables) and not matches(row.default, default_of(field)):
                problems.append(
                    f"{name} (line {row.line}): documented default {row.default!r}, "
                    f"real default {default_of(field)!r}"
                )
    assert not problems, "docs/configuration.md has wrong defaults:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("documented", "value", "expected"),
    [
        ("unset", None, True),
        ("`None`", None, False),
        ("empty", "", True),
        ("`true`", True, True),
        ("`True`", True, False),
        ("`120`", 120, True),
        ("`120`", 120.0, True),
        ("`1.0`", 1.0, True),
        ("`1.5`", 1.0, False),
        ("`mailramp.key`", Path("mailramp.key"), True),
        ("`sqlite:///mailramp.db`", "sqlite:///mailramp.db", True),
        ("sqlite:///mailramp.db", "sqlite:///mailramp.db", False),
        ('`["a", "b"]`', ["a", "b"], True),
    ],
)
def test_default_matching(documented: str, value: Any, expected: bool) -> None:
    assert matches(documented, value) is expected


def test_table_parsing() -> None:
    text = "\n".join(
        [
            "| Variable | Type | Default | Description |",
            "|---|---|---|---|",
            "| `MAILRAMP_A`, `CLERK_B` | string | unset | one \\| two |",
            "",
            "| Other | Table |",
            "|---|---|",
            "| `MAILRAMP_C` | x |",
        ]
    )
    assert documented_rows(text) == [
        Row(line=3, variables=("MAILRAMP_A", "CLERK_B"), default="unset", description="one | two")
    ]
