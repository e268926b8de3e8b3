"""Rules for OAuth mailboxes: start a link, finish it (create or update the mailbox), and
refresh tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from mailramp.errors import (
    ConflictError,
    OAuthGrantRevoked,
    OAuthTokenError,
    OAuthUnavailable,
    ValidationError,
)
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.secrets import SecretBox
from mailramp.kit.types import normalize_email
from mailramp.mailboxes.models import OAUTH_PROVIDERS, Mailbox, MailboxStatus, Provider
from mailramp.mailboxes.service import MailboxCredentials, MailboxService
from mailramp.oauth.clients import OAuthClient, OAuthEndpoints
from mailramp.oauth.state import LinkState, StateSealer


class OAuthLinking:
    """Links Outlook and Gmail mailboxes and refreshes their tokens. The mailbox service
    stores (and encrypts) what this obtains."""

    def __init__(
        self,
        mailboxes: MailboxService,
        secrets: SecretBox,
        endpoints: Mapping[Provider, OAuthEndpoints],
        *,
        public_base_url: str,
        clock: Clock = utc_now,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._mailboxes = mailboxes
        self._states = StateSealer(secrets, clock=clock)
        self._clients = {
            provider: OAuthClient(endpoints[provider], transport=transport)
            for provider in OAUTH_PROVIDERS
        }
        self._public_base_url = public_base_url.rstrip("/")
        self._clock = clock

    def redirect_uri(self, provider: str) -> str:
        """The callback URL to register with the provider."""
        return f"{self._public_base_url}/api/v1/mailboxes/oauth/{provider}/callback"

    def start(self, provider: str, user_id: str, *, login_hint: str | None = None) -> str:
        """The URL to send the user's browser to, to consent to linking a mailbox."""
        client = self._client(provider)
        client.endpoints.require_client_id()
        state = LinkState.new(client.endpoints.provider, user_id, issued_at=self._clock())
        return client.authorize_url(
            redirect_uri=self.redirect_uri(client.endpoints.provider),
            state=self._states.seal(state),
            verifier=state.verifier,
            login_hint=login_hint,
        )

    async def callback(
        self,
        provider: str,
        user_id: str,
        *,
        code: str | None,
        state: str | None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> Mailbox:
        """Finish a link: check the state, redeem the code, read the address, then create the
        mailbox, or update the user's mailbox with that address (nothing duplicated)."""
        client = self._client(provider)
        endpoints = client.endpoints
        link = self._states.open(state or "", provider=endpoints.provider, user_id=user_id)
        if error:
            said = f": {error_description}" if error_description else ""
            raise OAuthTokenError(
                f"{endpoints.label} did not authorize linking ({error}{said})",
                error=error,
                description=error_description,
            )
        if not code:
            raise ValidationError("code", "is required (the provider sent no authorization code)")
        tokens = await client.redeem_code(
            code,
            redirect_uri=self.redirect_uri(endpoints.provider),
            verifier=link.verifier,
            now=self._clock(),
        )
        profile = await client.profile(tokens.access_token.get_secret_value())
        email = self._address(endpoints, profile)
        fields: dict[str, Any] = {
            "access_token": tokens.access_token,
            "token_expires_at": tokens.expires_at,
            "user_profile": profile,
        }
        if tokens.refresh_token is not None:
            fields["refresh_token"] = tokens.refresh_token
        existing = await self._linked_with_address(user_id, email)
        if existing is None:
            name = profile.get("displayName") or profile.get("name")
            return await self._mailboxes.create_mailbox(
                user_id,
                email=email,
                provider=endpoints.provider,
                display_name=name if isinstance(name, str) and name.strip() else None,
                **fields,
            )
        if existing.provider is not endpoints.provider:
            raise ConflictError(
                f"{email} is already linked as a {existing.provider} mailbox; unlink it "
                f"before linking it through {endpoints.label}",
                field="email",
            )
        await self._mailboxes.update_mailbox(user_id, existing.id, **fields)
        return await self._mailboxes.set_status(user_id, existing.id, MailboxStatus.ACTIVE)

    async def refresh(self, mailbox: Mailbox, credentials: MailboxCredentials) -> Mailbox:
        """Trade the mailbox's refresh token for new tokens and store them. A revoked grant
        puts the mailbox in `error` with a reason the user can act on, and raises
        OAuthGrantRevoked."""
        client = self._client(mailbox.provider)
        if credentials.refresh_token is None:
            raise OAuthGrantRevoked(
                f"{client.endpoints.label}: this mailbox has no refresh token; "
                "reconnect this mailbox to keep sending from it",
                error="invalid_grant",
            )
        try:
            tokens = await client.refresh(
                credentials.refresh_token.get_secret_value(), now=self._clock()
            )
        except OAuthGrantRevoked as revoked:
            await self._mailboxes.set_status(
                mailbox.user_id, mailbox.id, MailboxStatus.ERROR, reason=revoked.message
            )
            raise
        fields: dict[str, Any] = {
            "access_token": tokens.access_token,
            "token_expires_at": tokens.expires_at,
        }
        # Google keeps the refresh token it issued; Microsoft rotates it.
        if tokens.refresh_token is not None:
            fields["refresh_token"] = tokens.refresh_token
        return await self._mailboxes.update_mailbox(mailbox.user_id, mailbox.id, **fields)

    def _client(self, provider: str) -> OAuthClient:
        try:
            return self._clients[Provider(provider)]
        except (ValueError, KeyError):
            raise ValidationError(
                "provider", "must be 'outlook' or 'gmail' for OAuth linking", value=provider
            ) from None

    @staticmethod
    def _address(endpoints: OAuthEndpoints, profile: Mapping[str, Any]) -> str:
        # Graph: `mail` is null for some accounts (personal ones without Exchange mail set,
        # for instance); `userPrincipalName` is then the sign-in address.
        if endpoints.provider is Provider.OUTLOOK:
            candidate = profile.get("mail") or profile.get("userPrincipalName")
        else:
            if profile.get("email_verified") is False:
                raise OAuthUnavailable(
                    f"{endpoints.label}: the account's address is not verified; verify it "
                    "with Google, then link again"
                )
            candidate = profile.get("email")
        if not isinstance(candidate, str):
            raise OAuthUnavailable(f"{endpoints.label}: the profile carries no email address")
        try:
            return normalize_email(candidate)
        except ValueError as error:
            raise OAuthUnavailable(
                f"{endpoints.label}: the profile's address {candidate!r} is unusable ({error})"
            ) from None

    async def _linked_with_address(self, user_id: str, email: str) -> Mailbox | None:
        for mailbox in await self._mailboxes.list_mailboxes(user_id):
            if mailbox.email == email:
                return mailbox
        return None
