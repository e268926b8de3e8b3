"""The errors mailramp raises: one tree, each with an HTTP status and a stable code.

::

    MailrampError                 500 internal
    ├── ValidationError           422 invalid           bad input; names the field and the value
    │   ├── ImportFileError       422 invalid_file      recipient file not UTF-8 CSV with `email`
    │   └── PlanError             422 plan_does_not_fit recipients exceed window and limits
    ├── AuthenticationError       401 unauthenticated   no valid credentials (one message)
    ├── ForbiddenError            403 forbidden         not allowed (CSRF, closed sign-up)
    ├── NotFoundError             404 not_found         missing, or owned by someone else
    ├── TooManyAttemptsError      429 too_many_attempts  an address's sign-ins over the limit
    ├── ConflictError             409 conflict          the request contradicts stored state
    │   ├── DuplicateError        409 duplicate         a unique field already holds this value
    │   ├── InvalidTransitionError 409 invalid_transition  status change the state machine forbids
    │   ├── NotEditableError      409 not_editable      the object's state forbids the change
    │   ├── MailboxTestFailed     409 mailbox_test_failed  not activated: its servers refused
    │   └── OAuthNotConfigured    409 oauth_not_configured  the provider's client id is not set
    ├── SecretIntegrityError      500 secret_integrity  a ciphertext moved to another row or field
    ├── DatabaseUnavailableError  503 database_unavailable  down, unreachable or login refused
    ├── BusyError                 503 busy              too much work queued (sign-ins); retry soon
    ├── ConfigurationError        500 configuration     settings or keys that cannot work
    │   └── SecretKeyError        500 secret_key        encryption keys missing or unable to decrypt
    ├── OAuthStateError           400 oauth_state_invalid  forged, expired, reused or foreign state
    ├── OAuthTokenError           400 oauth_refused     the provider refused (its error, described)
    │   └── OAuthGrantRevoked     400 oauth_grant_revoked  refresh token revoked: link it again
    ├── OAuthUnavailable          502 oauth_unavailable the provider did not answer usably
    ├── ProviderError             502 provider          what a mailbox's server or API said:
    │   ├── TransientSendError        nothing left; try again later (4xx, refused connection)
    │   │   ├── ThrottledError        the provider said when to try again (`retry_after`)
    │   │   └── ServerUnavailableError  unreachable or silent: skip it until a later pass
    │   ├── PermanentSendError        the recipient was refused (5xx): a bounce
    │   ├── UncertainSendError        the connection broke mid-handover: it may have left
    │   └── MailboxUnusableError      the mailbox cannot send (credentials, provider): stop
    └── HostError                 500 host              a host a user named (kit/network.py):
        ├── ForbiddenHostError        resolves to a non-public address: its owner must change it
        ├── UnknownHostError          the name does not exist (NXDOMAIN) or has no address
        ├── HostLookupError           the resolver failed for now (no answer, SERVFAIL)
        └── CleartextLoginError       a password would go unencrypted to a public host

Provider and host errors are handled where they happen (the worker, the inbox poller, the
mailbox check turn them into outcomes, statuses and field errors); the statuses are what a
request that meets one anyway answers. An error about one field carries `field`
(`error.field`, and `"field"` in the JSON body).

Every message is written for the person who sent the input: it names the field, the rule
and, where it helps, the offending value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")


class MailrampError(Exception):
    """Base of every error mailramp raises on purpose. When the error is about one field,
    `field` names it and the message starts with it (`"email: …"`); `detail` is the message
    without that prefix, for a form that shows it next to the field."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        full = f"{field}: {message}" if field else message
        super().__init__(full)
        self.message = full
        self.detail = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        """The JSON body an API returns for this error."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        return body if self.field is None else {**body, "field": self.field}


class ValidationError(MailrampError):
    """Input that breaks a rule; `field` names it."""

    status_code = 422
    code = "invalid"

    field: str

    def __init__(self, field: str, message: str, *, value: Any = None) -> None:
        super().__init__(message, field=field)
        self.value = value


class ImportFileError(ValidationError):
    """A recipient file refused as a whole; nothing of it was imported."""

    code = "invalid_file"

    def __init__(self, message: str, *, row: int | None = None) -> None:
        super().__init__("file", message, value=row)
        self.row = row


class PlanError(ValidationError):
    """The recipients do not fit the campaign's window, sending hours and daily limit; the
    message says how many fit and what duration, daily limit or number of mailboxes would
    fit them all."""

    code = "plan_does_not_fit"

    def __init__(
        self,
        message: str,
        *,
        fit: int,
        wanted: int,
        needed_duration_hours: float | None,
        needed_daily_limit: int | None = None,
        needed_mailboxes: int | None = None,
    ) -> None:
        super().__init__("total_recipients", message, value=wanted)
        self.fit = fit
        self.wanted = wanted
        self.needed_duration_hours = needed_duration_hours
        self.needed_daily_limit = needed_daily_limit
        self.needed_mailboxes = needed_mailboxes


class AuthenticationError(MailrampError):
    """No valid credentials. The message never says which part was wrong."""

    status_code = 401
    code = "unauthenticated"


class ForbiddenError(MailrampError):
    """Signed in, but this request is not allowed."""

    status_code = 403
    code = "forbidden"


class NotFoundError(MailrampError):
    """The object does not exist or belongs to another user (the two are indistinguishable)."""

    status_code = 404
    code = "not_found"

    def __init__(self, kind: str, identifier: str) -> None:
        super().__init__(f"{kind} {identifier!r} not found")
        self.kind = kind
        self.identifier = identifier


def found(item: T | None, kind: str, identifier: str) -> T:
    """`item`, or NotFoundError(kind, identifier) when there is none: not there, or
    another user's (a store scoped to its owner answers None for both)."""
    if item is None:
        raise NotFoundError(kind, identifier)
    return item


class TooManyAttemptsError(MailrampError):
    """Too many sign-in attempts from one client address; answered 429 with Retry-After."""

    status_code = 429
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ConflictError(MailrampError):
    """The request contradicts what is stored."""

    status_code = 409
    code = "conflict"


class DuplicateError(ConflictError):
    """A unique field already holds the value."""

    code = "duplicate"

    def __init__(self, field: str, value: Any = None, *, kind: str = "record") -> None:
        shown = f" {value!r}" if value is not None else ""
        super().__init__(f"a {kind} with {field}{shown} already exists", field=field)
        self.value = value


class MailboxTestFailed(ConflictError):
    """A mailbox was not activated: the test of its servers (or API) failed. `results`
    holds what each part said ({"smtp": {"ok": False, "error": ...}, ...})."""

    code = "mailbox_test_failed"

    def __init__(self, results: dict[str, dict[str, Any]]) -> None:
        failed = "; ".join(
            f"{part.upper()}: {result['error']}"
            for part, result in results.items()
            if not result["ok"]
        )
        super().__init__(
            f"not activated: the test failed ({failed}); correct the mailbox's settings, "
            "or link another",
            field="status",
        )
        self.results = results


class InvalidTransitionError(ConflictError):
    """A status change the state machine forbids."""

    code = "invalid_transition"

    def __init__(self, kind: str, current: str, requested: str, allowed: list[str]) -> None:
        current, requested = str(current), str(requested)
        allowed_text = ", ".join(allowed) if allowed else "nothing (final state)"
        super().__init__(
            f"a {kind} cannot go from {current!r} to {requested!r}; "
            f"from {current!r} it can go to {allowed_text}",
            field="status",
        )
        self.current = current
        self.requested = requested


class NotEditableError(ConflictError):
    """The object's state forbids the change."""

    code = "not_editable"


class SecretIntegrityError(MailrampError):
    """A ciphertext that does not belong where it was found (copied from another row or field)."""

    code = "secret_integrity"


class DatabaseUnavailableError(MailrampError):
    """The database cannot be used right now: nothing answers, the connection broke, or it
    refused the login. Requests answer 503; workers wait and try again; commands exit 5."""

    status_code = 503
    code = "database_unavailable"


class BusyError(MailrampError):
    """Too much of one kind of work is already waiting (password hashing); nothing was done.
    Answered 503 with Retry-After."""

    status_code = 503
    code = "busy"
    retry_after_seconds = 2


class ConfigurationError(MailrampError):
    """Settings that cannot work; raised at start-up, never later."""

    code = "configuration"


class SecretKeyError(ConfigurationError):
    """Encryption keys are missing, unreadable, or cannot decrypt what is stored."""

    code = "secret_key"


# -- a mailbox's provider (providers/*) -------------------------------------------


class ProviderError(MailrampError):
    """Base of what a mailbox's provider raises (sending, reading, linking checks):
    `smtp_code` when the server gave one. Handled by the worker and the poller; a request
    that meets one answers 502."""

    status_code = 502
    code = "provider"

    def __init__(self, message: str, *, smtp_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.smtp_code = smtp_code


class TransientSendError(ProviderError):
    """The message did not leave; the same send may succeed later."""


class ThrottledError(TransientSendError):
    """The provider asked for a pause longer than its client waits; `retry_after` in
    seconds: the worker retries the record then, not on its own back-off. `retry_at` is
    the time the provider named, when it named one (Gmail's sending limit)."""

    def __init__(
        self, message: str, *, retry_after: float, retry_at: datetime | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.retry_at = retry_at


class ServerUnavailableError(TransientSendError):
    """The mailbox's server refused or did not take the connection, or stopped answering
    (a timeout) before the message went over: the same would happen to the next message, so
    the worker puts the mailbox's other sends of this pass back instead of waiting on each."""


class PermanentSendError(ProviderError):
    """The recipient (or message) was refused for good: a bounce."""


class UncertainSendError(ProviderError):
    """The message may have been accepted: never retried automatically."""


class MailboxUnusableError(ProviderError):
    """The mailbox cannot send at all until its owner fixes it."""


# -- linking by OAuth (oauth/*) -------------------------------------------------------


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


# -- hosts users name (kit/network.py) ----------------------------------------------


class HostError(MailrampError):
    """A user-given host that must not, or cannot now, be connected to; the mailbox
    service turns it into a ValidationError that names the field."""

    code = "host"


class ForbiddenHostError(HostError):
    """The host resolves to an address outbound connections must not reach."""


class UnknownHostError(HostError):
    """The host name does not exist, or has no address: it will not start working by itself."""


class HostLookupError(HostError):
    """The name could not be resolved right now (the resolver did not answer or failed)."""


class CleartextLoginError(HostError):
    """A password would be sent unencrypted to a host on the public internet."""
