"""Mailbox secrets at rest, on every backend: encrypted, bound to their row, rotatable; and
the installation's own (the tracking keys), stored once and rotated with them."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select, update

from mailramp.errors import SecretIntegrityError, SecretKeyError
from mailramp.kit.secrets import InstanceSecrets, SecretBox, generate_key
from mailramp.kit.signing import TRACKING_KEYS, derive_tracking_keys, load_tracking_keys
from mailramp.runtime import mailbox_service
from mailramp.storage.sql import tables
from tests.conftest import Services, make_mailbox, make_user

PLAINTEXTS = ("smtp-password-PLAIN-1", "oauth-access-PLAIN-2", "oauth-refresh-PLAIN-3")


async def raw_database_text(services: Services) -> str:
    """Every value of every table, as the database holds it, in one string."""
    chunks: list[str] = []
    async with services.store.engine.connect() as connection:
        for table in tables.metadata.sorted_tables:
            for row in await connection.execute(select(table)):
                chunks.extend(str(value) for value in row)
    return "\n".join(chunks)


async def link_with_secrets(services: Services) -> tuple[str, str, str]:
    user = await make_user(services)
    smtp = await make_mailbox(
        services,
        user,
        provider="smtp",
        smtp_host="smtp.example.com",
        password=PLAINTEXTS[0],
        access_token=None,
    )
    oauth = await make_mailbox(
        services, user, provider="gmail", access_token=PLAINTEXTS[1], refresh_token=PLAINTEXTS[2]
    )
    return user.user_id, smtp.mailbox_id, oauth.mailbox_id


async def test_raw_database_holds_no_plaintext_secret(services: Services) -> None:
    await link_with_secrets(services)
    raw = await raw_database_text(services)
    assert raw.count("enc1:") == 3
    for plaintext in PLAINTEXTS:
        assert plaintext not in raw
        assert plaintext.encode().hex() not in raw


async def test_rotate_drop_old_key_and_everything_still_decrypts(
    services: Services, key: str
) -> None:
    user_id, smtp_id, oauth_id = await link_with_secrets(services)
    old_raw = await raw_database_text(services)
    new_key = generate_key()
    rotating = mailbox_service(services.store, SecretBox([new_key, key]))
    report = await rotating.rotate_secrets()
    assert report.rotated == 3 and report.skipped_changed == 0

    only_new = mailbox_service(services.store, SecretBox([new_key]))
    assert await only_new.check_secrets(sample=None) == 3
    smtp = await only_new.credentials(user_id, smtp_id)
    oauth = await only_new.credentials(user_id, oauth_id)
    assert smtp.password is not None and smtp.password.get_secret_value() == PLAINTEXTS[0]
    assert oauth.access_token is not None
    assert oauth.access_token.get_secret_value() == PLAINTEXTS[1]
    assert oauth.refresh_token is not None
    assert oauth.refresh_token.get_secret_value() == PLAINTEXTS[2]
    assert await raw_database_text(services) != old_raw

    only_old = mailbox_service(services.store, SecretBox([key]))
    with pytest.raises(SecretKeyError) as caught:
        await only_old.check_secrets(sample=None)
    assert "linkbox_box_table/" in str(caught.value)


async def test_ciphertext_copied_to_another_row_does_not_decrypt(services: Services) -> None:
    user_id, smtp_id, _ = await link_with_secrets(services)
    second = await make_mailbox(
        services,
        await services.accounts.get_user(user_id),
        provider="smtp",
        smtp_host="smtp.example.com",
        password="other-password",
        access_token=None,
    )
    boxes = tables.mailboxes
    async with services.store.engine.begin() as connection:
        stolen = (
            await connection.execute(select(boxes.c.password).where(boxes.c._id == smtp_id))
        ).scalar_one()
        await connection.execute(
            update(boxes).where(boxes.c._id == second.mailbox_id).values(password=stolen)
        )
    with pytest.raises(SecretIntegrityError):
        await services.mailboxes.credentials(user_id, second.mailbox_id)
    # Moved to another field of its own row, it does not decrypt either.
    async with services.store.engine.begin() as connection:
        await connection.execute(
            update(boxes).where(boxes.c._id == smtp_id).values(access_token=stolen)
        )
    with pytest.raises(SecretIntegrityError):
        await services.mailboxes.credentials(user_id, smtp_id)


async def test_an_instance_secret_is_stored_once_and_swapped_only_when_unchanged(
    services: Services,
) -> None:
    store, now = services.store, services.clock()
    assert await store.get_instance_secret(TRACKING_KEYS) is None
    assert await store.add_instance_secret(TRACKING_KEYS, "enc1:first", now=now) == "enc1:first"
    # Another process that made its own at the same moment gets the first one back.
    assert await store.add_instance_secret(TRACKING_KEYS, "enc1:second", now=now) == "enc1:first"
    assert not await store.replace_instance_secret(
        TRACKING_KEYS, old="enc1:stale", new="enc1:lost", now=now
    )
    assert await store.replace_instance_secret(
        TRACKING_KEYS, old="enc1:first", new="enc1:rotated", now=now
    )
    assert await store.get_instance_secret(TRACKING_KEYS) == "enc1:rotated"


async def test_tracking_keys_outlive_the_encryption_key_that_first_stored_them(
    services: Services, key: str
) -> None:
    keys = await load_tracking_keys(
        InstanceSecrets(services.store, SecretBox([key])), encryption_keys=[key]
    )
    # A random key signs; the one earlier versions derived from the key set still verifies.
    assert len(keys) == 2 and keys[1] == derive_tracking_keys([key])[0]
    stored = await services.store.get_instance_secret(TRACKING_KEYS)
    assert stored is not None and stored.startswith("enc1:")
    assert all(base64.b64encode(k).decode() not in stored for k in keys)

    new_key = generate_key()
    assert await InstanceSecrets(services.store, SecretBox([new_key, key])).rotate(TRACKING_KEYS)
    only_new = InstanceSecrets(services.store, SecretBox([new_key]))
    assert await load_tracking_keys(only_new, encryption_keys=[new_key]) == keys
    with pytest.raises(SecretKeyError, match="instance_secrets/tracking_keys/value"):
        await load_tracking_keys(
            InstanceSecrets(services.store, SecretBox([key])), encryption_keys=[key]
        )
