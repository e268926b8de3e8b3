"""The two OAuth providers' endpoints, and the HTTP calls made to them."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from mailramp.config import Settings
from mailramp.errors import OAuthGrantRevoked, OAuthNotConfigured, OAuthTokenError, OAuthUnavailable
from mailramp.mailboxes.models import Provider

TIMEOUT_SECONDS = 20

MICROSOFT_SCOPES = ("offline_access", "Mail.Send", "Mail.ReadWrite", "User.Read")
GOOGLE_SCOPES = (
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.modify",
    "openid",
    "email",
    "profile",
)


@dataclass(frozen=True)
class OAuthEndpoints:
    """One provider's OAuth app and URLs."""

    provider: Provider
    label: str
    client_id_setting: str
    client_id: str | None
    client_secret: SecretStr | None = field(repr=False)
    authorize_url: str
    token_url: str
    profile_url: str
    scopes: tuple[str, ...]
    extra_authorize_parameters: tuple[tuple[str, str], ...] = ()
    # Microsoft wants the scopes again when redeeming a code or refreshing; Google does not.
    scope_on_token_requests: bool = False

    def require_client_id(self) -> str:
        """The client id, or OAuthNotConfigured naming the setting to set."""
        if not self.client_id:
            raise OAuthNotConfigured(
                f"provider: {self.label} linking is not configured on this server "
                f"({self.client_id_setting} is not set); ask its operator"
            )
        return self.client_id


def endpoints_from_settings(settings: Settings) -> dict[Provider, OAuthEndpoints]:
    """Both providers' endpoints, as the settings configure them."""
    authority = f"{settings.microsoft_authority_url}/{settings.microsoft_tenant}/oauth2/v2.0"
    return {
        Provider.OUTLOOK: OAuthEndpoints(
            provider=Provider.OUTLOOK,
            label="Outlook (Microsoft)",
            client_id_setting="MAILRAMP_MICROSOFT_CLIENT_ID",
            client_id=settings.microsoft_client_id,
            client_secret=settings.microsoft_client_secret,
            authorize_url=f"{authority}/authorize",
            token_url=f"{authority}/token",
            profile_url=f"{settings.graph_url}/me",
            scopes=MICROSOFT_SCOPES,
            extra_authorize_parameters=(("response_mode", "query"),),
            scope_on_token_requests=True,
        ),
        Provider.GMAIL: OAuthEndpoints(
            provider=Provider.GMAIL,
            label="Gmail (Google)",
            client_id_setting="MAILRAMP_GOOGLE_CLIENT_ID",
            client_id=settings.google_client_id,
            client_secret=settings.google_client_secret,
            authorize_url=settings.google_auth_url,
            token_url=settings.google_token_url,
            profile_url=settings.google_userinfo_url,
            scopes=GOOGLE_SCOPES,
            # offline: a refresh token; consent: a refresh token on every link, not only
            # the first (Google otherwise omits it when the user consented before).
            extra_authorize_parameters=(("access_type", "offline"), ("prompt", "consent")),
        ),
    }


def code_challenge(verifier: str) -> str:
    """The S256 PKCE challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class TokenSet:
    """What a token endpoint granted. `refresh_token` is None when it kept the old one."""

    access_token: SecretStr = field(repr=False)
    refresh_token: SecretStr | None = field(repr=False)
    expires_at: datetime | None
    scope: str | None = None


class OAuthClient:
    """Talks to one provider's authorization server and profile endpoint."""

    def __init__(
        self, endpoints: OAuthEndpoints, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.endpoints = endpoints
        self._transport = transport

    def authorize_url(
        self, *, redirect_uri: str, state: str, verifier: str, login_hint: str | None = None
    ) -> str:
        """Where to send the user's browser to consent."""
        endpoints = self.endpoints
        parameters = [
            ("client_id", endpoints.require_client_id()),
            ("response_type", "code"),
            ("redirect_uri", redirect_uri),
            ("scope", " ".join(endpoints.scopes)),
            ("state", state),
            ("code_challenge", code_challenge(verifier)),
            ("code_challenge_method", "S256"),
            *endpoints.extra_authorize_parameters,
        ]
        if login_hint:
            parameters.append(("login_hint", login_hint))
        separator = "&" if "?" in endpoints.authorize_url else "?"
        return endpoints.authorize_url + separator + urlencode(parameters)

    async def redeem_code(
        self, code: str, *, redirect_uri: str, verifier: str, now: datetime
    ) -> TokenSet:
        """Exchange an authorization code (and the PKCE verifier) for tokens."""
        return await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            now=now,
        )

    async def refresh(self, refresh_token: str, *, now: datetime) -> TokenSet:
        """New tokens from a refresh token; OAuthGrantRevoked when it no longer works."""
        return await self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}, now=now
        )

    async def profile(self, access_token: str) -> dict[str, Any]:
        """The signed-in account's profile (Graph `/me`, Google userinfo)."""
        label = self.endpoints.label
        try:
            async with self._client() as client:
                response = await client.get(
                    self.endpoints.profile_url,
                    headers={
                        "Authorization": f"Bearer {access_token}",
                        "Accept": "application/json",
                    },
                )
        except httpx.HTTPError as error:
            raise OAuthUnavailable(
                f"{label}: the profile endpoint could not be reached ({type(error).__name__})"
            ) from None
        body = _json_object(response)
        if response.status_code != 200 or body is None:
            raise OAuthUnavailable(
                f"{label}: the profile endpoint answered {response.status_code}"
                + _describe_api_error(body)
            )
        return body

    async def _token_request(self, form: dict[str, str], *, now: datetime) -> TokenSet:
        endpoints = self.endpoints
        form = {"client_id": endpoints.require_client_id(), **form}
        if endpoints.client_secret is not None:
            form["client_secret"] = endpoints.client_secret.get_secret_value()
        if endpoints.scope_on_token_requests:
            form["scope"] = " ".join(endpoints.scopes)
        try:
            async with self._client() as client:
                response = await client.post(
                    endpoints.token_url, data=form, headers={"Accept": "application/json"}
                )
        except httpx.HTTPError as error:
            raise OAuthUnavailable(
                f"{endpoints.label}: the token endpoint could not be reached "
                f"({type(error).__name__})"
            ) from None
        body = _json_object(response)
        if body is not None and isinstance(body.get("error"), str):
            raise self._token_error(body, grant_type=form["grant_type"])
        if response.status_code != 200 or body is None:
            raise OAuthUnavailable(
                f"{endpoints.label}: the token endpoint answered {response.status_code} "
                "without an OAuth response"
            )
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise OAuthUnavailable(f"{endpoints.label}: the token response has no access_token")
        refresh_token = body.get("refresh_token")
        expires_in = body.get("expires_in")
        expires_at = None
        if isinstance(expires_in, int | float | str) and str(expires_in).isdigit():
            expires_at = now + timedelta(seconds=int(expires_in))
        scope = body.get("scope")
        return TokenSet(
            access_token=SecretStr(access_token),
            refresh_token=SecretStr(refresh_token) if isinstance(refresh_token, str) else None,
            expires_at=expires_at,
            scope=scope if isinstance(scope, str) else None,
        )

    def _token_error(self, body: dict[str, Any], *, grant_type: str) -> OAuthTokenError:
        error = str(body["error"])
        description = body.get("error_description")
        description = str(description).strip() if description else None
        said = f" ({description})" if description else ""
        label = self.endpoints.label
        if error == "invalid_grant" and grant_type == "refresh_token":
            return OAuthGrantRevoked(
                f"{label} no longer accepts this mailbox's authorization (invalid_grant{said}): "
                "reconnect this mailbox to keep sending from it",
                error=error,
                description=description,
            )
        if error == "invalid_grant":
            message = (
                f"{label} refused the authorization code (invalid_grant{said}); start linking again"
            )
        elif error in ("invalid_client", "unauthorized_client"):
            message = (
                f"{label} refused this server's OAuth app ({error}{said}); the operator must "
                "check the client id and secret settings"
            )
        else:
            message = f"{label} refused the token request ({error}{said})"
        return OAuthTokenError(message, error=error, description=description)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=TIMEOUT_SECONDS, transport=self._transport)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _describe_api_error(body: dict[str, Any] | None) -> str:
    # Graph: {"error": {"code", "message"}}; Google: {"error": "...", "error_description"}.
    if not body:
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        return f" ({error.get('code')}: {error.get('message')})"
    if isinstance(error, str):
        return f" ({error}: {body.get('error_description', '')})"
    return ""
