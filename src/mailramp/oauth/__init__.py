"""Linking Outlook and Gmail mailboxes by OAuth (authorization code with PKCE), and keeping
their tokens fresh. What it raises is drawn in `errors.py` (`OAuth…`).
"""

from mailramp.errors import (
    OAuthGrantRevoked,
    OAuthNotConfigured,
    OAuthStateError,
    OAuthTokenError,
    OAuthUnavailable,
)
from mailramp.oauth.clients import OAuthClient, OAuthEndpoints, TokenSet, endpoints_from_settings
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
