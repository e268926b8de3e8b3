"""Compact signed tokens for tracking links.

A token is base64url(payload || mac): payload = version, purpose, key id, the 12-byte record
ObjectId and a link index; mac = HMAC-SHA256(key, purpose label || payload), truncated to
96 bits. Purposes are separate (an open token is never a valid click or unsubscribe token),
keys rotate (the key id picks the verifying key), and the result is 40 characters.

The signing keys belong to the installation, not to the encryption key set: generated once,
stored encrypted (`load_tracking_keys`), they outlive every rotation of the encryption
keys, so a link in an email already sent keeps working after `mailramp keys rotate
--drop-old`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mailramp.kit.secrets import InstanceSecrets

VERSION = 1
MAC_BYTES = 12
_PAYLOAD = struct.Struct(">BBH12sH")  # version, purpose, key id, record id, link index
_TOKEN = re.compile(r"[A-Za-z0-9_-]{40}")  # base64url of payload + MAC (30 bytes), unpadded


class Purpose(IntEnum):
    """What a token may be used for."""

    OPEN = 1
    CLICK = 2
    UNSUBSCRIBE = 3
    ANSWER_OPEN = 4  # the pixel of an answer sent from the inbox, when asked for


@dataclass(frozen=True)
class TokenData:
    """What a valid token says."""

    purpose: Purpose
    record_id: str
    link_index: int = 0


class InvalidToken(Exception):
    """Tampered, truncated, for another purpose, or signed with an unknown key."""


TRACKING_KEYS = "tracking_keys"
"""The instance secret that holds the signing keys (JSON list of base64 keys, newest first)."""


async def load_tracking_keys(
    instance: InstanceSecrets, *, encryption_keys: Sequence[str]
) -> list[bytes]:
    """The tracking links' signing keys, newest first: a random key generated on the first
    start and stored encrypted, followed by the keys earlier versions derived from the
    encryption keys of that start, so links those versions sent keep verifying."""

    def generate() -> str:
        keys = [secrets.token_bytes(32), *derive_tracking_keys(encryption_keys)]
        return json.dumps([base64.b64encode(key).decode("ascii") for key in keys])

    stored = json.loads(await instance.get_or_create(TRACKING_KEYS, generate))
    return [base64.b64decode(key) for key in stored]


def derive_tracking_keys(encryption_keys: Sequence[str]) -> list[bytes]:
    """Keys derived (HKDF) from encryption keys, newest first: how tracking links were
    signed before the signing keys were stored on their own (kept to verify those links)."""
    keys = []
    for secret in encryption_keys:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"mailramp tracking v1")
        keys.append(hkdf.derive(secret.encode("ascii")))
    return keys


def _key_id(key: bytes) -> int:
    return int.from_bytes(hashlib.sha256(key).digest()[:2], "big")


class TokenSigner:
    """Signs with the newest key, verifies with any of them."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one tracking key is needed")
        self._newest = keys[0]
        self._by_id = {_key_id(key): key for key in reversed(keys)}

    def __repr__(self) -> str:
        return f"TokenSigner(keys={len(self._by_id)})"

    def sign(self, purpose: Purpose, record_id: str, link_index: int = 0) -> str:
        """A token for `record_id` (24-hex) and, for clicks, the link's index."""
        payload = _PAYLOAD.pack(
            VERSION, purpose, _key_id(self._newest), bytes.fromhex(record_id), link_index
        )
        mac = self._mac(self._newest, purpose, payload)
        return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode("ascii")

    def verify(self, token: str, purpose: Purpose) -> TokenData:
        """The token's data, or InvalidToken."""
        # Only the exact spelling sign() makes. Python's base64 decoders also take other
        # spellings of the same bytes (`+` and `/` for `-` and `_`, appended `=`, and skip
        # characters outside the alphabet), which would let an altered link still count.
        if _TOKEN.fullmatch(token) is None:
            raise InvalidToken("not a token")
        raw = base64.urlsafe_b64decode(token)
        payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
        version, token_purpose, key_id, record, link_index = _PAYLOAD.unpack(payload)
        key = self._by_id.get(key_id) if version == VERSION else None
        # Always one constant-time comparison, even for an unknown version or key id, so
        # the time a refusal takes says nothing about which part was wrong. Checked against
        # the purpose asked for, so a token of another purpose fails here too.
        expected = self._mac(key or self._newest, purpose, payload)
        if not hmac.compare_digest(mac, expected) or key is None or token_purpose != purpose:
            raise InvalidToken("bad signature")
        return TokenData(purpose=purpose, record_id=record.hex(), link_index=link_index)

    def fingerprint(self, value: str) -> str:
        """A keyed, one-way hash of a value (an IP address) for the event log."""
        return hmac.new(self._newest, b"ip:" + value.encode(), hashlib.sha256).hexdigest()[:16]

    @staticmethod
    def _mac(key: bytes, purpose: Purpose, payload: bytes) -> bytes:
        label = f"mailramp/{purpose.name.lower()}/".encode()
        return hmac.new(key, label + payload, hashlib.sha256).digest()[:MAC_BYTES]
