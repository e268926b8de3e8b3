"""The OAuth errors (the tree is drawn in the package docstring)."""

from __future__ import annotations

from typing import Any

from mailramp.errors import ConflictError, MailrampError


class OAuthNotConfigured(ConflictError):
    """The provider's OAuth app is not configured on this server."""

    code = "oauth_not_configured"


class OAuthStateError(MailrampError):
    """The `state` of a callback is not one this server issued to this user, or it expired
    or was used already. Nothing is stored."""

    status_code = 400
    code = "oauth_state_invalid"


class OAuthTokenError(MailrampError):
    """The provider's token endpoint (or consent screen) refused: `error` is its OAuth error
    code (`invalid_grant`, `invalid_client`, `access_denied`, …)."""

    status_code = 400
    code = "oauth_refused"

    def __init__(self, message: str, *, error: str, description: str | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.description = description

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "provider_error": self.error}


class OAuthGrantRevoked(OAuthTokenError):
    """The refresh token no longer works (revoked, expired, password changed): only the user
    can fix it, by linking the mailbox again."""

    code = "oauth_grant_revoked"


class OAuthUnavailable(MailrampError):
    """The provider could not be reached or answered something that is not OAuth."""

    status_code = 502
    code = "oauth_unavailable"
