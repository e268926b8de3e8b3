"""Access tokens for the API providers (Graph, Gmail) of OAuth mailboxes: the stored token
while it is fresh, a refreshed one (stored by `OAuthLinking.refresh`) before it expires or
after the API refused it.

What a refresh failure means for the sender:

    OAuthGrantRevoked (invalid_grant)   MailboxUnusableError "reconnect this mailbox"; the
                                        mailbox is already in `error` (OAuthLinking did it)
    OAuthUnavailable                    TransientSendError: try again later
    other OAuthTokenError,              MailboxUnusableError with the provider's words (the
    OAuthNotConfigured                  operator's app settings are wrong or missing): the
                                        mailbox pauses instead of failing its sends one by one
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from mailramp.errors import (
    MailboxUnusableError,
    OAuthGrantRevoked,
    OAuthNotConfigured,
    OAuthTokenError,
    OAuthUnavailable,
    TransientSendError,
)
from mailramp.kit.clock import Clock, utc_now
from mailramp.mailboxes.models import Mailbox
from mailramp.mailboxes.service import MailboxCredentials, MailboxService
from mailramp.mailboxes.transport import TokenSource
from mailramp.oauth.service import OAuthLinking

# A token this close to its expiry is refreshed first: a send must not start with a token
# that expires on the way.
REFRESH_MARGIN = timedelta(minutes=2)
RECONNECT = "reconnect this mailbox"


class MailboxTokenSource:
    """The TokenSource of one OAuth mailbox."""

    def __init__(
        self,
        linking: OAuthLinking,
        mailboxes: MailboxService,
        mailbox: Mailbox,
        credentials: MailboxCredentials,
        *,
        clock: Clock = utc_now,
        margin: timedelta = REFRESH_MARGIN,
    ) -> None:
        self._linking = linking
        self._mailboxes = mailboxes
        self._mailbox = mailbox
        self._credentials = credentials
        self._clock = clock
        self._margin = margin
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"MailboxTokenSource({self._mailbox.id})"

    async def access_token(self, *, force_refresh: bool = False) -> str:
        """The stored access token while it stays valid beyond the margin; else (or when
        `force_refresh`) a new one, stored before it is returned."""
        async with self._lock:
            token = self._credentials.access_token
            if not force_refresh and token is not None and self._fresh():
                return token.get_secret_value()
            await self._refresh()
            token = self._credentials.access_token
            if token is None:
                raise TransientSendError("the token endpoint granted no access token")
            return token.get_secret_value()

    def _fresh(self) -> bool:
        expires_at = self._mailbox.token_expires_at
        # No expiry known: use the token until the API refuses it (then force_refresh).
        return expires_at is None or expires_at - self._margin > self._clock()

    async def _refresh(self) -> None:
        mailbox = self._mailbox
        try:
            self._mailbox = await self._linking.refresh(mailbox, self._credentials)
        except OAuthGrantRevoked as revoked:
            message = revoked.message
            if RECONNECT not in message:
                message = f"{message}: {RECONNECT}"
            raise MailboxUnusableError(message) from None
        except OAuthUnavailable as error:
            raise TransientSendError(f"cannot refresh the access token: {error.message}") from None
        except (OAuthTokenError, OAuthNotConfigured) as error:
            raise MailboxUnusableError(
                f"cannot refresh the access token: {error.message}"
            ) from None
        # Microsoft rotates refresh tokens: read back what was stored.
        self._credentials = await self._mailboxes.credentials(mailbox.user_id, mailbox.id)


class MailboxTokenSources:
    """Builds the TokenSource of each OAuth mailbox (what the provider factories hold)."""

    def __init__(
        self, linking: OAuthLinking, mailboxes: MailboxService, *, clock: Clock = utc_now
    ) -> None:
        self._linking = linking
        self._mailboxes = mailboxes
        self._clock = clock

    def __call__(self, mailbox: Mailbox, credentials: MailboxCredentials) -> TokenSource:
        if credentials.access_token is None and credentials.refresh_token is None:
            raise MailboxUnusableError(f"the mailbox has no OAuth tokens: {RECONNECT}")
        return MailboxTokenSource(
            self._linking, self._mailboxes, mailbox, credentials, clock=self._clock
        )


__all__ = ["REFRESH_MARGIN", "MailboxTokenSource", "MailboxTokenSources"]
