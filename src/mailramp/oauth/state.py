"""The OAuth `state`: an encrypted, authenticated record of who started a link and the PKCE
verifier, so the server keeps nothing between start and callback yet the browser never sees
the verifier.

It is sealed with the secrets key set (Fernet: AES + HMAC), bound to the provider through
the encryption context, carries its issue time (valid 10 minutes) and the user it was
issued to, and a random nonce this process refuses to accept twice.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailramp.errors import OAuthStateError, SecretIntegrityError, SecretKeyError
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.secrets import PREFIX, SecretBox

STATE_LIFETIME = timedelta(minutes=10)
MAX_STATE_LENGTH = 2048


@dataclass(frozen=True)
class LinkState:
    """What a state says: who started linking which provider, and the PKCE verifier."""

    provider: str
    user_id: str
    verifier: str
    nonce: str
    issued_at: datetime

    @classmethod
    def new(cls, provider: str, user_id: str, *, issued_at: datetime) -> LinkState:
        """A fresh state with a new verifier (43 url-safe characters, RFC 7636's minimum
        length at 256 bits) and nonce."""
        return cls(
            provider=provider,
            user_id=user_id,
            verifier=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(12),
            issued_at=issued_at,
        )


def _context(provider: str) -> str:
    return f"oauth/state/{provider}"


class StateSealer:
    """Seals states for the browser and opens the ones that come back."""

    def __init__(
        self, box: SecretBox, *, clock: Clock = utc_now, lifetime: timedelta = STATE_LIFETIME
    ) -> None:
        self._box = box
        self._clock = clock
        self._lifetime = lifetime
        self._used: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StateSealer(lifetime={self._lifetime})"

    def seal(self, state: LinkState) -> str:
        """The state as an opaque url-safe string."""
        payload = json.dumps(
            {
                "u": state.user_id,
                "v": state.verifier,
                "n": state.nonce,
                "t": state.issued_at.timestamp(),
            },
            separators=(",", ":"),
        )
        return self._box.encrypt(payload, context=_context(state.provider)).removeprefix(PREFIX)

    def open(self, sealed: str, *, provider: str, user_id: str) -> LinkState:
        """The state if this server issued it for `provider` to `user_id` less than the
        lifetime ago and it was not used before; OAuthStateError otherwise."""
        if not sealed or len(sealed) > MAX_STATE_LENGTH:
            raise OAuthStateError("missing or malformed; start linking again", field="state")
        try:
            payload = json.loads(self._box.decrypt(PREFIX + sealed, context=_context(provider)))
            state = LinkState(
                provider=provider,
                user_id=str(payload["u"]),
                verifier=str(payload["v"]),
                nonce=str(payload["n"]),
                issued_at=datetime.fromtimestamp(float(payload["t"]), tz=UTC),
            )
        except (SecretKeyError, SecretIntegrityError, ValueError, KeyError, TypeError):
            raise OAuthStateError(
                "not issued by this server for this provider; start linking again", field="state"
            ) from None
        now = self._clock()
        if now - state.issued_at > self._lifetime:
            minutes = int(self._lifetime.total_seconds() // 60)
            raise OAuthStateError(
                f"expired (linking must finish within {minutes} minutes); start linking again",
                field="state",
            )
        if state.user_id != user_id:
            raise OAuthStateError(
                "linking was started by another user; sign in as that user or start linking again",
                field="state",
            )
        self._use(state.nonce, now)
        return state

    def _use(self, nonce: str, now: datetime) -> None:
        # Single use within this process; the provider also accepts each code only once.
        with self._lock:
            self._used = {n: at for n, at in self._used.items() if now - at <= self._lifetime}
            if nonce in self._used:
                raise OAuthStateError("already used; start linking again", field="state")
            self._used[nonce] = now
