"""Secrets never reach a log line, even with every logger (SQLAlchemy's included) at DEBUG."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mailramp.config import Settings
from mailramp.errors import ValidationError
from mailramp.runtime import open_runtime


async def test_no_plaintext_secret_in_any_log_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        encryption_key_file=tmp_path / "key",
    )
    logging.getLogger("sqlalchemy.engine").setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG):
            runtime = await open_runtime(settings)
            try:
                user = await runtime.accounts.create_user(
                    user_name="Ann", login_id="ann", password="user-PLAINTEXT-pw"
                )
                box = await runtime.mailboxes.create_mailbox(
                    user.user_id,
                    email="ann@example.com",
                    provider="smtp",
                    smtp_host="smtp.example.com",
                    password="smtp-PLAINTEXT-pw",
                )
                await runtime.mailboxes.update_mailbox(
                    user.user_id, box.mailbox_id, password="smtp-PLAINTEXT-new"
                )
                await runtime.mailboxes.credentials(user.user_id, box.mailbox_id)
                with pytest.raises(ValidationError) as caught:
                    await runtime.accounts.create_user(
                        user_name="Bo", login_id="bo", password="PLAINTEXT"
                    )
                assert caught.value.value is None
            finally:
                await runtime.close()
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "INSERT INTO linkbox_box_table" in text  # the SQL was logged, with its parameters
    assert "PLAINTEXT" not in text
