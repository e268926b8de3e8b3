"""The errors mailramp raises, each with an HTTP status and a stable machine-readable code.

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
    │   └── NotEditableError      409 not_editable      the object's state forbids the change
    ├── SecretIntegrityError      500 secret_integrity  a ciphertext moved to another row or field
    ├── DatabaseUnavailableError  503 database_unavailable  down, unreachable or login refused
    ├── BusyError                 503 busy              too much work queued (sign-ins); retry soon
    └── ConfigurationError        500 configuration     settings or keys that cannot work
        └── SecretKeyError        500 secret_key        encryption keys missing or unable to decrypt

Every message is written for the person who sent the input: it names the field, the rule
and, where it helps, the offending value.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MailrampError(Exception):
    """Base of every error mailramp raises on purpose."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """The JSON body an API returns for this error."""
        return {"code": self.code, "message": self.message}


class ValidationError(MailrampError):
    """Input that breaks a rule; `field` names it."""

    status_code = 422
    code = "invalid"

    def __init__(self, field: str, message: str, *, value: Any = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.value = value

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "field": self.field}


class ImportFileError(ValidationError):
    """A recipient file refused as a whole; nothing of it was imported."""

    code = "invalid_file"

    def __init__(self, message: str, *, row: int | None = None) -> None:
        super().__init__("file", message, value=row)
        self.row = row


class PlanError(ValidationError):
    """The recipients do not fit the campaign's window, sending hours and daily limit; the
    message says how many fit and what duration or daily limit would fit them all."""

    code = "plan_does_not_fit"

    def __init__(
        self,
        message: str,
        *,
        fit: int,
        wanted: int,
        needed_duration_hours: float | None,
        needed_daily_limit: int | None,
    ) -> None:
        super().__init__("total_recipients", message, value=wanted)
        self.fit = fit
        self.wanted = wanted
        self.needed_duration_hours = needed_duration_hours
        self.needed_daily_limit = needed_daily_limit


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
        super().__init__(f"{field}: a {kind} with {field}{shown} already exists")
        self.field = field
        self.value = value

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "field": self.field}


class InvalidTransitionError(ConflictError):
    """A status change the state machine forbids."""

    code = "invalid_transition"

    def __init__(self, kind: str, current: str, requested: str, allowed: list[str]) -> None:
        current, requested = str(current), str(requested)
        allowed_text = ", ".join(allowed) if allowed else "nothing (final state)"
        super().__init__(
            f"status: a {kind} cannot go from {current!r} to {requested!r}; "
            f"from {current!r} it can go to {allowed_text}"
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
