"""`mailramp serve` and `mailramp db upgrade` as a user runs them, over real HTTP."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from mailramp.storage.sql.migrate import head_revision
from tests.conftest import PostgresTarget, new_postgres_database
from tests.support.loops import run_blocking
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, plain, run_mailramp, serving


def test_serve_on_the_embedded_default_with_no_configuration(tmp_path: Path) -> None:
    port = free_port()
    with serving(port, cwd=tmp_path):
        response = httpx.get(f"http://127.0.0.1:{port}/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {
        "backend": "sqlite",
        "schema_version": head_revision(),
        "schema_head": head_revision(),
        "up_to_date": True,
        "schema_newer": False,
    }
    assert (tmp_path / "mailramp.db").is_file()
    key_file = tmp_path / "mailramp.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    log = (tmp_path / "serve.log").read_text()
    assert f"generated a new encryption key file at {key_file}" in log
    assert "back it up" in log
    first_key = key_file.read_text()

    # A second start reuses the key; it does not generate another.
    with serving(port, cwd=tmp_path):
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    assert key_file.read_text() == first_key
    assert "generated a new encryption key" not in (tmp_path / "serve.log").read_text()


def test_serve_refuses_to_start_with_a_broken_setting(tmp_path: Path) -> None:
    result = run_mailramp(
        "serve", cwd=tmp_path, env=clean_environment(MAILRAMP_DATABASE_URL="mysql://x/y")
    )
    assert result.returncode == 5  # configuration (docs/cli.md)
    assert "unsupported scheme 'mysql'" in plain(result.stderr)


def test_db_upgrade_then_serve_on_postgresql(tmp_path: Path, postgres: PostgresTarget) -> None:
    empty = run_blocking(new_postgres_database(postgres, migrated=False))
    environment = clean_environment(
        MAILRAMP_DATABASE_URL=empty,
        MAILRAMP_AUTO_MIGRATE="false",
        MAILRAMP_ENCRYPTION_KEY_FILE=str(tmp_path / "keys"),
    )
    refused = run_mailramp("serve", cwd=tmp_path, env=environment)
    assert refused.returncode == 5  # configuration (docs/cli.md)
    assert "run `mailramp db upgrade`" in plain(refused.stderr)

    upgraded = run_mailramp("db", "upgrade", cwd=tmp_path, env=environment)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"database at revision {head_revision()} (postgresql)" in plain(upgraded.stdout)
    again = run_mailramp("db", "upgrade", cwd=tmp_path, env=environment)
    assert again.returncode == 0

    port = free_port()
    with serving(port, cwd=tmp_path, env=environment):
        body = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
    assert body["database"]["backend"] == "postgresql"
    assert body["database"]["schema_version"] == head_revision()
