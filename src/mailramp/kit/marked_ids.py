"""How mailramp recognises its own warm-up emails in an inbox, with nothing a spam filter
could learn: no header of its own, no phrase. Each warm-up email's Message-ID is 26 random-
looking characters — a random nonce followed by a keyed hash of it under an instance secret
— as any mail client's Message-ID looks; only this installation can tell that the second
part matches the first. A reply carries it in In-Reply-To and References, as every reply
does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

WARMUP_KEY = "warmup_marker_key"
"""The instance secret the marks are made with (kit/secrets.InstanceSecrets)."""
NONCE_LENGTH = 16
MAC_LENGTH = 10
_MESSAGE_ID = re.compile(r"<?([a-z2-7]{26})@([^>\s]+)>?")


def new_key() -> str:
    """A fresh key, as the instance secret stores it."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class WarmupMarker:
    """Makes and recognises warm-up Message-IDs."""

    def __init__(self, key: str) -> None:
        self._key = base64.b64decode(key)

    def _mac(self, nonce: str) -> str:
        digest = hmac.new(self._key, nonce.encode("ascii"), hashlib.sha256).digest()
        return base64.b32encode(digest).decode("ascii").lower()[:MAC_LENGTH]

    def message_id(self, domain: str) -> str:
        """A new warm-up Message-ID at `domain` (the sending mailbox's)."""
        nonce = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()
        nonce = nonce[:NONCE_LENGTH]
        return f"<{nonce}{self._mac(nonce)}@{domain}>"

    def is_warmup(self, message_id: str | None) -> bool:
        """Whether `message_id` is one of this installation's warm-up Message-IDs."""
        found = _MESSAGE_ID.fullmatch((message_id or "").strip())
        if found is None:
            return False
        local = found.group(1)
        nonce, mac = local[:NONCE_LENGTH], local[NONCE_LENGTH:]
        return hmac.compare_digest(mac, self._mac(nonce))

    def in_thread(self, *message_ids: str | None) -> bool:
        """Whether any of `message_ids` (a Message-ID, In-Reply-To, References' ids) is a
        warm-up one: a warm-up email or a reply in a warm-up thread."""
        for value in message_ids:
            for part in (value or "").split():
                if self.is_warmup(part):
                    return True
        return False
