"""Settings, read from the environment (prefix ``MAILRAMP_``) or a ``.env`` file."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from mailramp.errors import ConfigurationError
from mailramp.kit.dns import parse_servers

Backend = Literal["sqlite", "postgresql", "mongodb"]


class Settings(BaseSettings):
    """Everything an operator can set. Only composition roots (app, CLI, db_manager) read it."""

    model_config = SettingsConfigDict(
        env_prefix="MAILRAMP_", env_file=".env", extra="ignore", frozen=True, populate_by_name=True
    )

    database_url: str = Field(
        default="sqlite:///mailramp.db",
        description="sqlite:///PATH (relative to the working directory) or postgresql://…",
    )
    db_pool_size: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Connections each process keeps open to PostgreSQL (MongoDB: with "
        "MAILRAMP_DB_MAX_OVERFLOW, the client's maxPoolSize unless the URL sets it).",
    )
    db_max_overflow: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="Connections a process may open beyond the pool under load, closed again.",
    )
    mongodb_write_concern: str = Field(
        default="majority",
        description="MongoDB: how many members acknowledge (journaled) every write, "
        "whatever the URL's `w` says. `1` only where losing a write to a failover — and so "
        "sending an email twice — is acceptable.",
    )
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys, newest first. Overrides the key file.",
    )
    encryption_key_file: Path = Field(
        default=Path("mailramp.key"),
        description="Where the key set lives when MAILRAMP_ENCRYPTION_KEYS is unset; "
        "generated (mode 0600) on first start if absent.",
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The address recipients' clicks and opens reach (tracking links).",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    trusted_proxies: str = Field(
        default="127.0.0.1,::1",
        description="Addresses (or networks, or `*`) of the reverse proxies whose "
        "X-Forwarded-For and X-Forwarded-Proto are believed: the client address that sign-in "
        "limits, the open/click classifier and the event log see.",
    )
    max_request_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="The largest request body (JSON, forms) the web server accepts; a larger "
        "one is answered 413 before it is read.",
    )
    max_upload_bytes: int = Field(
        default=100 * 1024 * 1024,
        ge=1024,
        description="The largest multipart upload (a recipients CSV) the web server accepts.",
    )
    auto_migrate: bool = Field(
        default=True,
        description="Apply pending database migrations at start-up "
        "(turn off when `mailramp db upgrade` runs as a deploy step).",
    )
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`text`: one human-readable line per record; `json`: one JSON object per "
        "line (time, level, logger, message and the record's extra fields), for log collectors.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, GET /metrics (of `mailramp serve` and of a worker's health "
        "port) requires `Authorization: Bearer <token>`; unset, /metrics is open.",
    )
    clerk_jwt_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("MAILRAMP_CLERK_JWT_KEY", "CLERK_JWT_KEY"),
        description="Clerk's PEM public key: verifies session tokens with no network call.",
    )
    clerk_jwks_url: str | None = Field(
        default=None, description="Clerk's JWKS URL (used when no PEM key is set)."
    )
    clerk_authorized_parties: str | None = Field(
        default=None, description="Comma-separated origins allowed in a token's `azp` claim."
    )
    clerk_publishable_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MAILRAMP_CLERK_PUBLISHABLE_KEY", "CLERK_PUBLISHABLE_KEY"),
        description="Clerk's publishable key (pk_live_…/pk_test_…): shows Clerk's sign-in "
        "on /signin. Its Frontend API host is read from the key.",
    )
    clerk_frontend_api_url: str | None = Field(
        default=None,
        description="Override of the Frontend API origin read from the publishable key "
        "(a Clerk proxy, or a stand-in in tests).",
    )
    clerk_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("MAILRAMP_CLERK_WEBHOOK_SECRET", "CLERK_WEBHOOK_SECRET"),
        description="The Svix signing secret (whsec_…) of Clerk's webhook endpoint.",
    )
    signup_open: bool = Field(
        default=True, description="Let anyone create a local account (turn off after yours)."
    )
    ramp_new_mailboxes: bool = Field(
        default=True,
        description="Newly linked mailboxes ramp up to their daily limit (10 a day, 2 more "
        "after each day sent without a brake) unless linked as already warm; false: every "
        "new mailbox is taken as already warm.",
    )
    allow_private_hosts: bool = Field(
        default=False,
        description="Let mailbox SMTP/IMAP hosts resolve to loopback or private addresses "
        "(a mail server on your own network).",
    )
    allow_cleartext_login: bool = Field(
        default=False,
        description="Let mailboxes with `plain` transport log in to hosts on the public "
        "internet, sending the password unencrypted.",
    )
    dns_servers: str | None = Field(
        default=None,
        description="The DNS servers mailramp asks about users' domains (tracking domains; "
        "the sending domains' MX, SPF, DKIM and DMARC), comma-separated `ip` or `ip:port`; "
        "unset, the machine's resolver.",
    )
    run_worker: bool = Field(
        default=True, description="Run a sending worker inside `mailramp serve`."
    )
    worker_lease_seconds: float = Field(default=120, gt=0)
    worker_batch_size: int = Field(default=200, ge=1, le=10_000)
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    worker_in_flight_per_mailbox: int = Field(default=5, ge=1, le=100)
    inbox_poll_interval_seconds: float = Field(
        default=60,
        gt=0,
        description="How often each mailbox's inbox is checked for replies and bounces.",
    )
    scanner_burst_seconds: float = Field(
        default=5,
        gt=0,
        le=60,
        description="Requests for one email's links, each within this many seconds of the "
        "one before, form a burst: two or more distinct links in one are a link scanner's.",
    )
    settle_seconds: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="How long after an open or click its verdict (a person or a machine) "
        "waits for the rest of its burst; the human counters move then.",
    )
    known_networks_file: Path | None = Field(
        default=None,
        description="A list of the networks mail proxies and security gateways publish, in "
        "the format of the one mailramp ships (tracking/networks.toml), used instead of it.",
    )
    send_gap_min_seconds: float = Field(
        default=120,
        ge=0,
        le=86_400,
        description="The shortest random pause between two emails of one mailbox "
        "(0 with the maximum 0: no pause).",
    )
    send_gap_max_seconds: float = Field(
        default=300,
        ge=0,
        le=86_400,
        description="The longest random pause between two emails of one mailbox.",
    )
    send_max_attempts: int = Field(default=5, ge=1, le=50)
    send_retry_base_seconds: float = Field(default=60, gt=0)
    smtp_timeout_seconds: float = Field(
        default=60,
        gt=0,
        le=600,
        description="How long a send waits for a mailbox's SMTP server to connect and for "
        "each of its answers before giving up on that attempt.",
    )
    microsoft_client_id: str | None = Field(
        default=None,
        description="Application (client) ID of the Azure app that links Outlook / Microsoft "
        "365 mailboxes by OAuth; unset, Outlook linking is off.",
    )
    microsoft_client_secret: SecretStr | None = Field(
        default=None, description="A client secret of that Azure app."
    )
    microsoft_tenant: str = Field(
        default="common",
        description="Which accounts may sign in: `common`, `organizations`, `consumers` or a "
        "tenant id.",
    )
    microsoft_authority_url: str = Field(
        default="https://login.microsoftonline.com",
        description="Microsoft identity platform host; `/{tenant}/oauth2/v2.0/authorize` and "
        "`/token` are under it (a sovereign cloud's host, or a stand-in in tests).",
    )
    graph_url: str = Field(
        default="https://graph.microsoft.com/v1.0",
        description="Microsoft Graph API base URL (with its version).",
    )
    google_client_id: str | None = Field(
        default=None,
        description="OAuth client ID (web application) of the Google Cloud project that links "
        "Gmail / Google Workspace mailboxes; unset, Gmail linking is off.",
    )
    google_client_secret: SecretStr | None = Field(
        default=None, description="The client secret of that OAuth client."
    )
    google_auth_url: str = Field(
        default="https://accounts.google.com/o/oauth2/v2/auth",
        description="Google's authorization endpoint.",
    )
    google_token_url: str = Field(
        default="https://oauth2.googleapis.com/token", description="Google's token endpoint."
    )
    google_userinfo_url: str = Field(
        default="https://openidconnect.googleapis.com/v1/userinfo",
        description="Google's OpenID Connect userinfo endpoint (the linked address).",
    )
    gmail_url: str = Field(
        default="https://gmail.googleapis.com", description="Gmail API base URL."
    )

    @field_validator(
        "public_base_url",
        "microsoft_authority_url",
        "graph_url",
        "google_auth_url",
        "google_token_url",
        "google_userinfo_url",
        "gmail_url",
    )
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("mongodb_write_concern")
    @classmethod
    def _write_concern(cls, value: str) -> str:
        value = value.strip().lower()
        if value != "majority" and not (value.isdigit() and 1 <= int(value) <= 99):
            raise ValueError("must be `majority` or a number of members from 1 to 99")
        return value

    @field_validator("dns_servers")
    @classmethod
    def _dns_servers(cls, value: str | None) -> str | None:
        parse_servers(value)
        return value

    @model_validator(mode="after")
    def _send_gap_in_order(self) -> Self:
        if self.send_gap_min_seconds > self.send_gap_max_seconds:
            raise ValueError(
                f"send_gap_min_seconds ({self.send_gap_min_seconds:g}) is more than "
                f"send_gap_max_seconds ({self.send_gap_max_seconds:g})"
            )
        return self

    @model_validator(mode="after")
    def _burst_inside_settling(self) -> Self:
        if self.scanner_burst_seconds >= self.settle_seconds:
            raise ValueError(
                f"scanner_burst_seconds ({self.scanner_burst_seconds:g}) must be less than "
                f"settle_seconds ({self.settle_seconds:g}): a request settles after its burst"
            )
        return self

    @cached_property
    def backend(self) -> Backend:
        """Which backend the database URL names (SQLite, PostgreSQL or MongoDB)."""
        return backend_of(self.database_url)

    def encryption_key_list(self) -> list[str] | None:
        """Keys given in the environment, newest first, or None to use the key file."""
        if self.encryption_keys is None:
            return None
        keys = [key.strip() for key in self.encryption_keys.get_secret_value().split(",")]
        keys = [key for key in keys if key]
        if not keys:
            raise ConfigurationError("MAILRAMP_ENCRYPTION_KEYS is set but holds no key")
        return keys


def backend_of(database_url: str) -> Backend:
    """The backend named by a database URL's scheme."""
    scheme = database_url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if scheme == "mongodb":  # mongodb:// and mongodb+srv://
        return "mongodb"
    raise ConfigurationError(
        f"MAILRAMP_DATABASE_URL: unsupported scheme {scheme!r}; "
        "use sqlite:///PATH, postgresql://USER@HOST/DB or mongodb://HOST/DB"
    )


def load_settings_from_environment() -> Settings:
    """Settings() — but a value the environment (or .env) gets wrong is one
    ConfigurationError naming the variable, the value and what it must be, instead of
    pydantic's report: an operator reads one line and knows what to change."""
    try:
        return Settings()
    except PydanticValidationError as error:
        raise settings_error(error) from None
    except SettingsError as error:  # a value pydantic-settings could not even decode
        raise ConfigurationError(f"{error}; docs/configuration.md lists every setting") from None


def settings_error(error: PydanticValidationError) -> ConfigurationError:
    """The first of the problems pydantic found, in the operator's words (and how many
    more there are)."""
    problems = error.errors(include_url=False)
    first = problems[0]
    loc = first.get("loc") or ()
    field = str(loc[0]) if loc else ""
    name = variable_of(field) if field else "the settings"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    given = first.get("input")
    shown = "" if not loc or isinstance(given, dict) else f" (given {str(given)[:60]!r})"
    more = f"; {len(problems) - 1} more problem(s) after this one" if len(problems) > 1 else ""
    return ConfigurationError(
        f"{message[:1].lower()}{message[1:]}{shown}{more}; docs/configuration.md lists every "
        "setting",
        field=name,
    )


def variable_of(field: str) -> str:
    """The environment variable that sets a Settings field (the first of its aliases)."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices) and alias.choices:
        return str(alias.choices[0])
    if isinstance(alias, str):
        return alias
    return f"MAILRAMP_{field.upper()}"
