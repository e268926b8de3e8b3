"""Which code runs against which schema (issue 28, item 2): an older mailramp started on a
database a newer one migrated, and a newer one on a database still behind, each say so in
one line with what to do, exit 5; `/healthz` shows the version and the schemas either way;
`mailramp db downgrade` goes back (docs/deployment.md, "Upgrades and rollbacks").

"An older mailramp" is this code on a database whose schema revision it does not know —
what the newer code's `mailramp db upgrade` leaves (its revision stamped here by hand)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from mailramp import __version__
from mailramp.errors import ConfigurationError
from mailramp.runtime import migrate_store
from mailramp.storage.mongo import MongoStore
from mailramp.storage.sql.migrate import head_revision
from tests.support.mongo_double import mock_database
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, plain, run_mailramp, serving

FUTURE = "0099_from_a_newer_mailramp"
BEFORE = "0023_events_for_every_record"


def stamp(database: Path, revision: str) -> None:
    """What a newer mailramp's `db upgrade` leaves in alembic_version (its migrations'
    additions do not matter here: this code never reads them)."""
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return plain(lines[0])


def test_older_code_on_a_newer_schema_says_so_and_exits_5(tmp_path: Path) -> None:
    env = clean_environment()
    assert run_mailramp("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    stamp(tmp_path / "mailramp.db", FUTURE)
    expected = (
        f"error: the database's schema is at {FUTURE}, newer than this mailramp "
        f"{__version__} knows (its newest: {head_revision()}): run the newer mailramp that "
        "migrated it, or undo its migrations with that version's `mailramp db downgrade` "
        "(docs/deployment.md#upgrades-and-rollbacks)"
    )
    upgrade = run_mailramp("db", "upgrade", cwd=tmp_path, env=env)
    assert upgrade.returncode == 5 and one_line(upgrade.stderr) == expected
    serve = run_mailramp("serve", "--port", str(free_port()), cwd=tmp_path, env=env)
    assert serve.returncode == 5 and one_line(serve.stderr) == expected
    worker_env = clean_environment(MAILRAMP_AUTO_MIGRATE="false")
    worker = run_mailramp("worker", cwd=tmp_path, env=worker_env)
    assert worker.returncode == 5 and one_line(worker.stderr) == expected


def test_newer_code_on_an_older_schema_says_so_and_db_downgrade_goes_back(
    tmp_path: Path,
) -> None:
    env = clean_environment(MAILRAMP_AUTO_MIGRATE="false")
    assert run_mailramp("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    unconfirmed = run_mailramp("db", "downgrade", BEFORE, cwd=tmp_path, env=env)
    assert unconfirmed.returncode == 2
    assert "back up the database first, then run it again with --yes" in plain(unconfirmed.stderr)
    unknown = run_mailramp("db", "downgrade", "0007_nope", "--yes", cwd=tmp_path, env=env)
    assert unknown.returncode == 1 and "'0007_nope' is no revision" in plain(unknown.stderr)
    down = run_mailramp("db", "downgrade", BEFORE, "--yes", cwd=tmp_path, env=env)
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == f"database at revision {BEFORE} (sqlite)"
    worker = run_mailramp("worker", cwd=tmp_path, env=env)
    assert worker.returncode == 5
    assert one_line(worker.stderr) == (
        f"error: the database schema is at {BEFORE} but this mailramp needs "
        f"{head_revision()}: run `mailramp db upgrade`"
    )
    up = run_mailramp("db", "upgrade", cwd=tmp_path, env=env)
    assert up.stdout.strip() == f"database at revision {head_revision()} (sqlite)"


def test_healthz_shows_the_version_and_both_schemas_either_way(tmp_path: Path) -> None:
    port = free_port()
    env = clean_environment(MAILRAMP_RUN_WORKER="false")
    with serving(port, cwd=tmp_path, env=env):
        url = f"http://127.0.0.1:{port}/healthz"
        current = httpx.get(url, timeout=10)
        assert current.status_code == 200
        assert current.json()["version"] == __version__
        # A newer mailramp migrated the database under this running one: it keeps serving
        # through the rolling deploy, and says it is the older one.
        stamp(tmp_path / "mailramp.db", FUTURE)
        newer = httpx.get(url, timeout=10)
        assert newer.status_code == 200
        assert newer.json() == {
            "status": "ok",
            "version": __version__,
            "database": {
                "backend": "sqlite",
                "schema_version": FUTURE,
                "schema_head": head_revision(),
                "up_to_date": False,
                "schema_newer": True,
            },
        }
        # The schema behind this code (the newer code downgraded it, say): not servable.
        stamp(tmp_path / "mailramp.db", BEFORE)
        behind = httpx.get(url, timeout=10)
        assert behind.status_code == 503
        assert behind.json()["status"] == "schema_out_of_date"
        assert behind.json()["version"] == __version__
        assert behind.json()["database"]["schema_version"] == BEFORE
        # Every page's footer: the version, and the schema its code expects.
        page = httpx.get(f"http://127.0.0.1:{port}/signin", timeout=10)
        assert f"mailramp {__version__} · schema {head_revision()}</footer>" in page.text


async def test_mongodb_older_code_on_a_newer_layout_refuses_to_migrate() -> None:
    store = MongoStore(mock_database())
    await store.migrate()
    await store.database["mailramp_meta"].update_one(
        {"_id": "schema"}, {"$set": {"version": "mongo-0099"}}
    )
    with pytest.raises(ConfigurationError, match="newer than this mailramp"):
        await migrate_store(store)
    assert await store.downgrade("mongo-0023") == "mongo-0023"
    assert await migrate_store(store) != "mongo-0023"
