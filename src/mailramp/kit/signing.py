"""Compact signed tokens for tracking links.

A token is base64url(payload || mac): payload = version, purpose, key id, the 12-byte record
ObjectId and a link index; mac = HMAC-SHA256(key, purpose label || payload), truncated to
96 bits. Purposes are separate (an open token is never a valid click or unsubscribe token),
keys rotate (the key id picks the verifying key), and the result is 40 characters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
MAC_BYTES = 12
_PAYLOAD = struct.Struct(">BBH12sH")  # version, purpose, key id, record id, link index


class Purpose(IntEnum):
    """What a token may be used for."""

    OPEN = 1
    CLICK = 2
    UNSUBSCRIBE = 3


@dataclass(frozen=True)
class TokenData:
    """What a valid token says."""

    purpose: Purpose
    record_id: str
    link_index: int = 0


class InvalidToken(Exception):
    """Tampered, truncated, for another purpose, or signed with an unknown key."""


def derive_tracking_keys(secrets: Sequence[str]) -> list[bytes]:
    """Tracking keys derived (HKDF) from the encryption keys, newest first, so rotating
    the key set rotates them too; links signed with a key verify while that key is kept."""
    keys = []
    for secret in secrets:
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
        if len(token) > 64:
            raise InvalidToken("too long")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise InvalidToken("not base64url") from None
        if len(raw) != _PAYLOAD.size + MAC_BYTES:
            raise InvalidToken("wrong length")
        payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
        version, token_purpose, key_id, record, link_index = _PAYLOAD.unpack(payload)
        key = self._by_id.get(key_id)
        if version != VERSION or key is None:
            raise InvalidToken("unknown version or key")
        # Checked against the purpose asked for, so a token of another purpose fails here.
        if not hmac.compare_digest(mac, self._mac(key, purpose, payload)) or (
            token_purpose != purpose
        ):
            raise InvalidToken("bad signature")
        return TokenData(purpose=purpose, record_id=record.hex(), link_index=link_index)

    def fingerprint(self, value: str) -> str:
        """A keyed, one-way hash of a value (an IP address) for the event log."""
        return hmac.new(self._newest, b"ip:" + value.encode(), hashlib.sha256).hexdigest()[:16]

    @staticmethod
    def _mac(key: bytes, purpose: Purpose, payload: bytes) -> bytes:
        label = f"mailramp/{purpose.name.lower()}/".encode()
        return hmac.new(key, label + payload, hashlib.sha256).digest()[:MAC_BYTES]
