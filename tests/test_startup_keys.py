"""Settings and keys at start-up: generated once, never silently replaced, clear errors."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from mailramp.config import Settings
from mailramp.errors import ConfigurationError, SecretKeyError
from mailramp.kit.secrets import generate_key
from mailramp.runtime import open_runtime


def settings_in(directory: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite:///{directory / 'mailramp.db'}",
        "encryption_key_file": directory / "mailramp.key",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def link_smtp_mailbox(settings: Settings) -> None:
    runtime = await open_runtime(settings)
    try:
        user = await runtime.accounts.create_user(user_name="Ann", login_id="ann")
        await runtime.mailboxes.create_mailbox(
            user.user_id,
            email="ann@example.com",
            provider="smtp",
            smtp_host="smtp.example.com",
            password="smtp-secret",
        )
    finally:
        await runtime.close()


def test_settings_come_from_mailramp_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILRAMP_DATABASE_URL", "postgresql://mr@db.internal/mailramp")
    monkeypatch.setenv("MAILRAMP_PUBLIC_BASE_URL", "https://mail.example.com/")
    settings = Settings()
    assert settings.backend == "postgresql"
    assert settings.public_base_url == "https://mail.example.com"
    monkeypatch.delenv("MAILRAMP_DATABASE_URL")
    assert Settings().database_url == "sqlite:///mailramp.db"
    assert Settings().backend == "sqlite"
    with pytest.raises(ConfigurationError, match="unsupported scheme 'mysql'"):
        _ = Settings(database_url="mysql://x/y").backend


async def test_key_file_is_generated_once_with_mode_0600(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_in(tmp_path)
    with caplog.at_level(logging.WARNING):
        await link_smtp_mailbox(settings)
    key_file = tmp_path / "mailramp.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    messages = [record.getMessage() for record in caplog.records]
    assert any(str(key_file) in m and "back it up" in m for m in messages), messages
    content = key_file.read_text()
    caplog.clear()
    runtime = await open_runtime(settings)
    await runtime.close()
    assert key_file.read_text() == content
    assert not any("generated" in record.getMessage() for record in caplog.records)


async def test_missing_key_file_with_stored_secrets_is_a_startup_error(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    await link_smtp_mailbox(settings)
    (tmp_path / "mailramp.key").unlink()
    with pytest.raises(SecretKeyError) as caught:
        await open_runtime(settings)
    assert str(tmp_path / "mailramp.key") in str(caught.value)
    assert "restore it from your backup" in str(caught.value)
    assert not (tmp_path / "mailramp.key").exists()  # no new key silently generated


async def test_wrong_key_for_stored_secrets_is_a_startup_error(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    await link_smtp_mailbox(settings)
    (tmp_path / "mailramp.key").write_text(generate_key() + "\n")
    with pytest.raises(SecretKeyError, match="no key in the key set decrypts"):
        await open_runtime(settings)


async def test_unreadable_key_file_is_a_startup_error(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    settings = settings_in(tmp_path, encryption_key_file=tmp_path / "keys")
    with pytest.raises(SecretKeyError, match="cannot read the encryption key file"):
        await open_runtime(settings)
    (tmp_path / "empty.key").write_text("# no keys here\n")
    with pytest.raises(SecretKeyError, match="holds no key"):
        await open_runtime(settings_in(tmp_path, encryption_key_file=tmp_path / "empty.key"))


async def test_keys_from_the_environment(tmp_path: Path) -> None:
    key = generate_key()
    settings = settings_in(tmp_path, encryption_keys=f" {key} , ")
    await link_smtp_mailbox(settings)
    assert not (tmp_path / "mailramp.key").exists()
    with pytest.raises(SecretKeyError, match="encryption key #1 is not a valid key"):
        await open_runtime(settings_in(tmp_path, encryption_keys="not-a-key"))
    with pytest.raises(ConfigurationError, match="holds no key"):
        await open_runtime(settings_in(tmp_path, encryption_keys=" , "))
    secret = settings.encryption_keys
    assert secret is not None and key not in repr(settings) and key not in str(secret)


async def test_without_auto_migrate_an_old_schema_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="run `mailramp db upgrade`"):
        await open_runtime(settings_in(tmp_path, auto_migrate=False))
