"""Clerk session tokens: RS256 JWTs verified with Clerk's PEM key (no network) or its JWKS.

`exp` and `nbf` are checked with a little leeway for clock skew, and the `azp` (authorised
party) claim against the configured origins when there are any (Clerk's guidance).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import jwt

from mailramp.errors import AuthenticationError

LEEWAY_SECONDS = 10


@dataclass(frozen=True)
class ClerkIdentity:
    """Who a valid token says the caller is."""

    clerk_user_id: str
    email: str | None = None
    name: str | None = None


class ClerkVerifier:
    """Verifies Clerk session tokens."""

    def __init__(
        self,
        *,
        pem_key: str | None = None,
        jwks_url: str | None = None,
        authorized_parties: list[str] | None = None,
    ) -> None:
        if not pem_key and not jwks_url:
            raise ValueError("a PEM key or a JWKS URL is needed")
        self._pem_key = pem_key
        self._jwks = (
            jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=3600)
            if jwks_url and not pem_key
            else None
        )
        self._parties = authorized_parties or []

    async def verify(self, token: str) -> ClerkIdentity:
        """The identity in a valid token; AuthenticationError otherwise (never why)."""
        try:
            key: Any = self._pem_key
            if self._jwks is not None:
                # PyJWKClient fetches (and caches) with urllib: keep it off the event loop.
                key = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub"], "verify_aud": False},
            )
        except (jwt.PyJWTError, ValueError):
            raise AuthenticationError("invalid session token") from None
        if self._parties and claims.get("azp") not in self._parties:
            raise AuthenticationError("invalid session token")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthenticationError("invalid session token")
        email = claims.get("email")
        name = claims.get("name")
        return ClerkIdentity(
            clerk_user_id=subject,
            email=email if isinstance(email, str) else None,
            name=name if isinstance(name, str) else None,
        )
