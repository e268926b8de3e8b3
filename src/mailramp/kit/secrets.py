"""Encryption of stored secrets (mailbox passwords, OAuth tokens) with a rotatable key set.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under a MultiFernet: the first key
encrypts, every key decrypts, `rotate` re-encrypts under the first. Each plaintext is
wrapped with its *context* (table, row id, field) before encryption and the context is
checked on decryption, so a ciphertext copied into another row or field does not decrypt.

Besides the users' secrets, the installation has secrets of its own (the tracking links'
signing keys): `InstanceSecrets` generates each once, stores it encrypted like the others
and re-encrypts it when the key set is rotated.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from mailramp.errors import SecretIntegrityError, SecretKeyError
from mailramp.kit.clock import Clock, utc_now

log = logging.getLogger(__name__)

PREFIX = "enc1:"
"""Every stored ciphertext starts with this, so plaintext stored by mistake is detectable."""


def secret_context(table: str, row_id: str, field: str) -> str:
    """The context a secret is bound to."""
    return f"{table}/{row_id}/{field}"


def generate_key() -> str:
    """A new random Fernet key (url-safe base64, 32 bytes)."""
    return Fernet.generate_key().decode("ascii")


def is_ciphertext(value: str) -> bool:
    """Whether a stored value is one of our ciphertexts."""
    return value.startswith(PREFIX)


class SecretBox:
    """Encrypts and decrypts secrets bound to a context, under a key set (newest first)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretKeyError("the encryption key set is empty")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                raise SecretKeyError(
                    f"encryption key #{position} is not a valid key "
                    "(expected 32 url-safe base64 bytes, as `mailramp keys generate` prints)"
                ) from None
        self._multi = MultiFernet(fernets)
        self._newest = fernets[0]
        self.key_count = len(fernets)

    def __repr__(self) -> str:
        return f"SecretBox(keys={self.key_count})"

    def encrypt(self, plaintext: str, *, context: str) -> str:
        """Encrypt `plaintext` under the newest key, bound to `context`."""
        payload = json.dumps({"c": context, "v": plaintext}, separators=(",", ":"))
        return PREFIX + self._newest.encrypt(payload.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str, *, context: str) -> str:
        """Decrypt a value stored under `context`; fails loudly on a wrong key or context."""
        if not is_ciphertext(ciphertext):
            raise SecretIntegrityError(f"{context}: stored value is not an encrypted secret")
        try:
            payload = self._multi.decrypt(ciphertext[len(PREFIX) :].encode("ascii"))
        except InvalidToken:
            raise SecretKeyError(
                f"{context}: no key in the key set decrypts this secret "
                "(was the key that encrypted it removed?)"
            ) from None
        document = json.loads(payload)
        if document.get("c") != context:
            raise SecretIntegrityError(
                f"{context}: the secret was encrypted for another record or field"
            )
        value = document["v"]
        assert isinstance(value, str)
        return value

    def rotate(self, ciphertext: str, *, context: str) -> str:
        """Re-encrypt a stored value under the newest key (checking its context first)."""
        return self.encrypt(self.decrypt(ciphertext, context=context), context=context)


INSTANCE_SECRETS_TABLE = "instance_secrets"


class InstanceSecretRepository(Protocol):
    """Where the installation's own secrets are stored (encrypted), by name."""

    async def get_instance_secret(self, name: str) -> str | None:
        """The stored ciphertext, or None if there is none yet."""
        ...

    async def add_instance_secret(self, name: str, value: str, *, now: datetime) -> str:
        """Store `value` under `name` unless a value is already there; returns the value
        stored, which is another process's when it stored one first."""
        ...

    async def replace_instance_secret(
        self, name: str, *, old: str, new: str, now: datetime
    ) -> bool:
        """Swap one ciphertext for another if it is still `old` (rotation's compare-and-set)."""
        ...


class InstanceSecrets:
    """The installation's secrets: generated once (by whichever process needs one first),
    stored encrypted under the key set, shared by every process, rotated with the key set."""

    def __init__(
        self, store: InstanceSecretRepository, box: SecretBox, *, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._box = box
        self._clock = clock

    async def get_or_create(self, name: str, generate: Callable[[], str]) -> str:
        """The secret called `name`; `generate()` makes it if none is stored yet."""
        context = secret_context(INSTANCE_SECRETS_TABLE, name, "value")
        stored = await self._store.get_instance_secret(name)
        if stored is None:
            candidate = self._box.encrypt(generate(), context=context)
            stored = await self._store.add_instance_secret(name, candidate, now=self._clock())
        return self._box.decrypt(stored, context=context)

    async def rotate(self, name: str) -> bool:
        """Re-encrypt the secret called `name` under the newest key; False if there is none
        (or it changed meanwhile, so it is already under the newest key)."""
        stored = await self._store.get_instance_secret(name)
        if stored is None:
            return False
        context = secret_context(INSTANCE_SECRETS_TABLE, name, "value")
        new = self._box.rotate(stored, context=context)
        return await self._store.replace_instance_secret(
            name, old=stored, new=new, now=self._clock()
        )


@dataclass(frozen=True)
class KeyFile:
    """The file that holds the key set when none is given in the environment: one key a line,
    newest first; blank lines and lines starting with '#' are ignored."""

    path: Path

    def exists(self) -> bool:
        """Whether the file is there (readable or not)."""
        return self.path.exists()

    def read(self) -> list[str]:
        """The keys in the file, newest first; unreadable or empty is a SecretKeyError."""
        try:
            text = self.path.read_text(encoding="ascii")
        except OSError as error:
            raise SecretKeyError(
                f"cannot read the encryption key file {self.path}: {error.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise SecretKeyError(f"the encryption key file {self.path} is not a key file") from None
        keys = [line.strip() for line in text.splitlines()]
        keys = [key for key in keys if key and not key.startswith("#")]
        if not keys:
            raise SecretKeyError(f"the encryption key file {self.path} holds no key")
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            log.warning(
                "encryption key file %s is readable by other users (mode %o); chmod 600 it",
                self.path,
                mode,
            )
        return keys

    def create(self) -> list[str]:
        """Create the file with one new key, mode 0600; never overwrites an existing file."""
        key = generate_key()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(_KEY_FILE_HEADER + key + "\n")
        log.warning(
            "generated a new encryption key file at %s — back it up: without it the stored "
            "mailbox passwords and OAuth tokens cannot be decrypted",
            self.path.resolve(),
        )
        return [key]

    def write(self, keys: Sequence[str]) -> None:
        """Replace the file's keys atomically (write a sibling, then rename), keeping mode 0600."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(_KEY_FILE_HEADER + "".join(key + "\n" for key in keys))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)


_KEY_FILE_HEADER = (
    "# mailramp encryption keys, newest first. Back this file up; keep it private (chmod 600).\n"
)
