"""The schema's four usage examples, run verbatim through `mailramp.db_manager`.

Each example block is read from docs/schema.md and executed as written, synchronously. The
only edit: the placeholder strings (`"user_id_string"`, …) are replaced by the ids the earlier
examples returned, since the document leaves those for the reader to fill in.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PostgresTarget, new_postgres_database
from tests.support.loops import run_blocking
from tests.support.processes import clean_environment

REPO = Path(__file__).parents[1]
SCHEMA = REPO / "docs" / "schema.md"
SHARED_SCHEMA = REPO.parent / "shared" / "seed" / "schema.md"

RUNNER = r"""
import json, re, sys
from datetime import datetime, timezone
from mailramp import db_manager

blocks = json.loads(sys.argv[1])
placeholders = {}
namespace = {"db_manager": db_manager, "datetime": datetime, "timezone": timezone}
out = {}
for number, code in enumerate(blocks):
    for placeholder, value in placeholders.items():
        code = code.replace(f'"{placeholder}"', repr(value))
    exec(code, namespace)
    if "result" in namespace:
        result = namespace["result"]
        for name in ("user_id", "mailbox_id", "campaign_id"):
            if hasattr(result, name) and name + "_string" not in placeholders:
                placeholders[name + "_string"] = getattr(result, name)
    if "metrics" in namespace:
        out["metrics"] = namespace["metrics"].model_dump(mode="json", by_alias=True)
    out[f"block{number}"] = namespace["result"].model_dump(mode="json", by_alias=True)
print(json.dumps(out))
"""


def usage_examples() -> list[str]:
    text = SCHEMA.read_text()
    section = text[text.index("## Usage Examples") :]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_repository_schema_is_the_shared_contract() -> None:
    if SHARED_SCHEMA.exists():
        assert SCHEMA.read_text() == SHARED_SCHEMA.read_text()
    blocks = usage_examples()
    assert len(blocks) == 4
    assert all("await" not in block for block in blocks)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_usage_examples_run_verbatim(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    environment = clean_environment()
    if backend == "postgresql":
        target: PostgresTarget = request.getfixturevalue("postgres")
        environment["MAILRAMP_DATABASE_URL"] = run_blocking(new_postgres_database(target))
    completed = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(usage_examples())],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    out = json.loads(completed.stdout)
    user, mailbox, campaign = out["block0"], out["block1"], out["block2"]
    assert user["user_name"] == "John Doe" and user["clerk_user_id"] == "user_abc123"
    assert user["user_id"] == user["_id"]
    assert mailbox["user_id"] == user["_id"] and mailbox["provider"] == "outlook"
    assert mailbox["is_primary"] is True and "access_token" not in mailbox
    assert campaign["mailbox_id"] == mailbox["_id"] and campaign["status"] == "scheduled"
    assert campaign["total_recipients"] == 100 and campaign["duration"] == 24
    metrics = out["metrics"]
    assert metrics["campaign_id"] == campaign["campaign_id"]
    assert metrics["user_id"] == user["_id"] and metrics["mailbox_id"] == mailbox["_id"]
    assert metrics["total_sent"] == 0 and metrics["open_rate"] == 0
    if backend == "sqlite":
        assert (tmp_path / "mailramp.db").exists()  # the default: a file in the working dir


def test_database_manager_works_from_inside_an_event_loop(tmp_path: Path) -> None:
    from mailramp.config import Settings
    from mailramp.db_manager import DatabaseManager

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        encryption_key_file=tmp_path / "key",
    )

    async def inside_a_loop() -> str:
        with DatabaseManager(settings=settings) as manager:
            user = manager.create_user(user_name="Loop", login_id="loop")
            return manager.get_user(user.user_id).login_id

    assert asyncio.run(inside_a_loop()) == "loop"


def test_database_manager_errors_are_typed(tmp_path: Path) -> None:
    from mailramp.db_manager import DatabaseManager
    from mailramp.errors import DuplicateError, ValidationError

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with DatabaseManager(url) as manager:
        manager.create_user(user_name="A", login_id="a@example.com")
        with pytest.raises(DuplicateError, match="login_id"):
            manager.create_user(user_name="B", login_id="a@example.com")
        with pytest.raises(ValidationError, match="duration"):
            manager.create_campaign(
                user_id="0123456789abcdef01234567",
                mailbox_id="0123456789abcdef01234567",
                campaign_name="x",
                subject="x",
                message="x",
                duration=0,
                start_time=__import__("datetime").datetime.now(__import__("datetime").UTC),
            )
