"""`mailramp keys rotate` end to end: new key, re-encryption, old key dropped, still readable."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from mailramp.config import Settings
from mailramp.runtime import open_runtime
from tests.support.processes import clean_environment, plain, run_mailramp


async def _link(settings: Settings) -> tuple[str, str]:
    runtime = await open_runtime(settings)
    try:
        user = await runtime.accounts.create_user(user_name="Ann", login_id="ann")
        box = await runtime.mailboxes.create_mailbox(
            user.user_id,
            email="ann@example.com",
            provider="gmail",
            access_token="access-PLAIN",
            refresh_token="refresh-PLAIN",
        )
        return user.user_id, box.mailbox_id
    finally:
        await runtime.close()


async def _read(settings: Settings, user_id: str, mailbox_id: str) -> tuple[str, str]:
    runtime = await open_runtime(settings)
    try:
        credentials = await runtime.mailboxes.credentials(user_id, mailbox_id)
        assert credentials.access_token is not None and credentials.refresh_token is not None
        return (
            credentials.access_token.get_secret_value(),
            credentials.refresh_token.get_secret_value(),
        )
    finally:
        await runtime.close()


def test_rotate_and_drop_old_keys(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'mailramp.db'}",
        encryption_key_file=tmp_path / "mailramp.key",
    )
    user_id, mailbox_id = asyncio.run(_link(settings))
    key_file = tmp_path / "mailramp.key"
    old_keys = [line for line in key_file.read_text().splitlines() if not line.startswith("#")]
    assert len(old_keys) == 1

    result = run_mailramp("keys", "rotate", "--drop-old", cwd=tmp_path, env=clean_environment())
    assert result.returncode == 0, result.stderr
    # The two OAuth tokens, the tracking links' signing keys and the warm-up marker's key.
    assert "re-encrypted 4 secret(s) under the newest key" in plain(result.stdout)
    assert "removed 1 older key(s)" in plain(result.stdout)
    new_keys = [line for line in key_file.read_text().splitlines() if not line.startswith("#")]
    assert len(new_keys) == 1 and new_keys != old_keys
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "PLAIN" not in result.stdout + result.stderr

    assert asyncio.run(_read(settings, user_id, mailbox_id)) == ("access-PLAIN", "refresh-PLAIN")


def test_rotate_with_environment_keys_needs_the_new_key_first(tmp_path: Path) -> None:
    environment = clean_environment(MAILRAMP_ENCRYPTION_KEYS=run_key(tmp_path))
    refused = run_mailramp("keys", "rotate", cwd=tmp_path, env=environment)
    assert refused.returncode == 2
    assert "put the new key first" in plain(refused.stderr)
    accepted = run_mailramp("keys", "rotate", "--no-new-key", cwd=tmp_path, env=environment)
    assert accepted.returncode == 0, accepted.stderr
    # The tracking keys and the warm-up marker's key, made at start.
    assert "re-encrypted 2 secret(s)" in plain(accepted.stdout)


def run_key(tmp_path: Path) -> str:
    generated = run_mailramp("keys", "generate", cwd=tmp_path)
    assert generated.returncode == 0
    key = generated.stdout.strip()
    assert len(key) == 44
    return key
