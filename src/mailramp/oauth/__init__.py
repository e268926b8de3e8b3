"""Linking Outlook and Gmail mailboxes by OAuth (authorization code with PKCE), and keeping
their tokens fresh.

::

    MailrampError
    ├── OAuthNotConfigured   409 oauth_not_configured  the provider's client id is not set
    ├── OAuthStateError      400 oauth_state_invalid   forged, expired, reused or foreign state
    ├── OAuthTokenError      400 oauth_refused         the provider refused (its error, described)
    │   └── OAuthGrantRevoked 400 oauth_grant_revoked  refresh token revoked: reconnect the mailbox
    └── OAuthUnavailable     502 oauth_unavailable     the provider did not answer usably
"""

from mailramp.oauth.clients import OAuthClient, OAuthEndpoints, TokenSet, endpoints_from_settings
from mailramp.oauth.errors import (
    OAuthGrantRevoked,
    OAuthNotConfigured,
    OAuthStateError,
    OAuthTokenError,
    OAuthUnavailable,
)
from mailramp.oauth.service import OAuthLinking
from mailramp.oauth.state import LinkState, StateSealer

__all__ = [
    "LinkState",
    "OAuthClient",
    "OAuthEndpoints",
    "OAuthGrantRevoked",
    "OAuthLinking",
    "OAuthNotConfigured",
    "OAuthStateError",
    "OAuthTokenError",
    "OAuthUnavailable",
    "StateSealer",
    "TokenSet",
    "endpoints_from_settings",
]
