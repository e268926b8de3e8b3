"""Clerk session tokens: RS256 JWTs verified with Clerk's PEM key (no network) or its JWKS.

`exp` and `nbf` are checked with a little leeway for clock skew, and the `azp` (authorised
party) claim against the configured origins when there are any (Clerk's guidance).
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any

import jwt

from mailramp.errors import AuthenticationError, ConfigurationError

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


# -- the front end --------------------------------------------------------------------------

CLERK_JS_PATH = "/npm/@clerk/clerk-js@5/dist/clerk.browser.js"


@dataclass(frozen=True)
class ClerkFrontend:
    """Where the sign-in page loads ClerkJS from, and the key it starts it with."""

    publishable_key: str
    origin: str  # the Frontend API, e.g. https://clerk.example.com

    @property
    def script_url(self) -> str:
        return self.origin + CLERK_JS_PATH

    def content_security_policy(self, base: str) -> str:
        """`base` widened by what Clerk's documentation lists for its components: scripts
        and API calls to the Frontend API, Cloudflare's bot check, Clerk's avatar images,
        blob workers and the inline styles of its CSS-in-JS."""
        extra = {
            "script-src": f"{self.origin} https://challenges.cloudflare.com",
            "connect-src": self.origin,
            "img-src": "https://img.clerk.com",
            "style-src": "'unsafe-inline'",
            "worker-src": "blob:",
            "frame-src": "https://challenges.cloudflare.com",
        }
        directives: dict[str, str] = {}
        for part in base.split(";"):
            name, _, value = part.strip().partition(" ")
            if name:
                directives[name] = value
        for name, value in extra.items():
            directives[name] = " ".join((directives.get(name, "'self'"), value))
        return "; ".join(f"{name} {value}" for name, value in directives.items())


def frontend_api_origin(publishable_key: str) -> str:
    """The Frontend API origin encoded in a publishable key: `pk_(test|live)_` followed by
    base64 of `<host>$`."""
    kind, _, rest = publishable_key.partition("_")
    prefix, _, encoded = rest.partition("_")
    try:
        if kind != "pk" or prefix not in ("test", "live"):
            raise ValueError
        host = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode()
        if not host.endswith("$") or not host[:-1] or "/" in host:
            raise ValueError
    except ValueError:
        raise ConfigurationError(
            "CLERK_PUBLISHABLE_KEY is not a Clerk publishable key (pk_test_… or pk_live_…)"
        ) from None
    return "https://" + host[:-1]


def clerk_frontend(publishable_key: str | None, origin: str | None) -> ClerkFrontend | None:
    """The front end to show on /signin, or None when Clerk's sign-in is not configured."""
    if not publishable_key:
        return None
    encoded_origin = frontend_api_origin(publishable_key)  # checks the key in every case
    resolved = (origin or "").rstrip("/") or encoded_origin
    return ClerkFrontend(publishable_key=publishable_key, origin=resolved)
