"""What callers send to link or change a mailbox. Secrets are write-only `SecretStr`s."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from mailramp.kit.types import EmailAddress, Input, MomentInput, Text, TimeZoneName, refuse_null
from mailramp.mailboxes.models import (
    DEFAULT_DAILY_LIMIT,
    BrakeRules,
    Provider,
    TransportSecurity,
)

Host = Annotated[str, Text(253)]
Port = Annotated[int, Field(ge=1, le=65535)]
DailyLimit = Annotated[int, Field(ge=1, le=10_000)]
RampStart = Annotated[int, Field(ge=1, le=10_000)]
RampStep = Annotated[int, Field(ge=1, le=1_000)]
DisplayName = Annotated[str, Text(200, required=False)]
UserName = Annotated[str, Text(254, required=False)]
"""The user name a server asks for (often the address); empty: the mailbox's address."""
DkimSelector = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*$",
    ),
]
"""A DKIM selector as it stands before `._domainkey.` (`google`, `s1`, `2024a.mail`)."""
DkimSelectors = Annotated[list[DkimSelector], Field(max_length=10)]


class ServerSettings(Input):
    """Where an SMTP mailbox sends, and reads replies from (IMAP); unset on Outlook and
    Gmail mailboxes."""

    smtp_host: Host | None = None
    smtp_port: Port | None = None
    smtp_security: TransportSecurity | None = None
    smtp_username: UserName | None = None
    imap_host: Host | None = None
    imap_port: Port | None = None
    imap_security: TransportSecurity | None = None
    imap_username: UserName | None = None


class DeliverabilitySettings(Input):
    """How the mailbox ramps up, takes part in warm-up and is braked
    ([deliverability.md](deliverability.md)); left out, they stay as they are (or the
    defaults, when linking)."""

    already_warm: bool | None = Field(
        default=None,
        description="True: the mailbox has been sending for a while, its `daily_limit` "
        "applies from day one. False: it ramps up to it from `ramp_start` a day, "
        "`ramp_step` more after each day it sent without a brake. Unset when linking: the "
        "operator's default (MAILRAMP_RAMP_NEW_MAILBOXES).",
    )
    ramp_start: RampStart | None = None
    ramp_step: RampStep | None = None
    warmup_enabled: bool | None = Field(
        default=None,
        description="Take part in the warm-up pool: exchange warm-up emails with the other "
        "opted-in mailboxes (deliverability.md).",
    )
    warmup_start: Annotated[int, Field(ge=1, le=100)] | None = None
    warmup_step: Annotated[int, Field(ge=0, le=100)] | None = None
    warmup_max: Annotated[int, Field(ge=1, le=200)] | None = None
    warmup_reply_percent: Annotated[int, Field(ge=0, le=100)] | None = None
    warmup_timezone: TimeZoneName | None = Field(
        default=None,
        description="The zone of its warm-up business hours (IANA, e.g. Europe/Paris).",
    )
    brake_rules: BrakeRules | None = Field(
        default=None,
        description="When the brakes stop this mailbox's campaign sends (complaint rate, "
        "inbox placement); unset: the defaults.",
    )


class MailboxCreate(ServerSettings, DeliverabilitySettings):
    """A mailbox to link. Outlook and Gmail need an OAuth token; SMTP needs a host, and a
    password unless the server takes mail without a login (a relay on the operator's own
    network: no password, no login) — reading replies over IMAP always needs one."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"provider": {"const": Provider.SMTP.value}}},
            "then": {
                "required": ["smtp_host"],
                "properties": {"smtp_host": {"type": "string"}},
            },
            "else": {
                "anyOf": [
                    {"required": [name], "properties": {name: {"type": "string"}}}
                    for name in ("access_token", "refresh_token")
                ]
            },
        }
    )

    email: EmailAddress
    provider: Provider
    password: SecretStr | None = Field(default=None, repr=False)
    access_token: OAuthToken | None = Field(default=None, repr=False)
    refresh_token: OAuthToken | None = Field(default=None, repr=False)
    token_expires_at: MomentInput | None = None
    user_profile: dict[str, Any] = Field(default_factory=dict)
    display_name: DisplayName | None = None
    daily_limit: DailyLimit = DEFAULT_DAILY_LIMIT

    @model_validator(mode="after")
    def _credentials_fit_provider(self) -> MailboxCreate:
        if self.provider is Provider.SMTP:
            if self.smtp_host is None:
                raise ValueError("smtp_host is required for provider 'smtp'")
            if self.password is None and self.imap_host is not None:
                raise ValueError(
                    "password is required to read replies over IMAP (imap_host); without "
                    "one, the SMTP server is used without a login"
                )
        elif self.access_token is None and self.refresh_token is None:
            raise ValueError(
                f"access_token or refresh_token is required for provider '{self.provider}'"
            )
        return self


TOKEN_MAX = 16_384
"""Longer than any token Microsoft or Google issue (a few kilobytes at most)."""


def _token(value: SecretStr) -> SecretStr:
    token = value.get_secret_value()
    if not token or len(token) > TOKEN_MAX or not all(" " <= c <= "~" for c in token):
        raise ValueError(
            f"must be 1 to {TOKEN_MAX:,} printable ASCII characters, as OAuth tokens are"
        )
    return value


OAuthToken = Annotated[
    SecretStr,
    AfterValidator(_token),
    WithJsonSchema(
        {
            "type": "string",
            "format": "password",
            "writeOnly": True,
            "minLength": 1,
            "maxLength": TOKEN_MAX,
            "pattern": "^[\\x20-\\x7e]+$",
        }
    ),
]
"""An OAuth access or refresh token: RFC 6749 allows printable ASCII only (it goes in an
HTTP header as it is)."""

RAMP_FIELDS = (
    "already_warm",
    "ramp_start",
    "ramp_step",
    "warmup_enabled",
    "warmup_start",
    "warmup_step",
    "warmup_max",
    "warmup_reply_percent",
    "warmup_timezone",
)
NOT_CLEARABLE = ("daily_limit", "user_profile", *RAMP_FIELDS)
"""A mailbox's settings a change may not set to null."""


class MailboxUpdate(ServerSettings, DeliverabilitySettings):
    """Changes to a mailbox; fields left out stay as they are. Secrets given are replaced."""

    model_config = ConfigDict(json_schema_extra=lambda schema: refuse_null(schema, NOT_CLEARABLE))

    password: SecretStr | None = Field(default=None, repr=False)
    access_token: OAuthToken | None = Field(default=None, repr=False)
    refresh_token: OAuthToken | None = Field(default=None, repr=False)
    token_expires_at: MomentInput | None = None
    user_profile: dict[str, Any] | None = None
    display_name: DisplayName | None = None
    daily_limit: DailyLimit | None = None
    dkim_selectors: DkimSelectors | None = Field(
        default=None,
        description="The DKIM selectors your domain signs with, when mailramp cannot guess "
        "them from the provider (checked by the domain checks); [] goes back to the guess.",
    )


class TrackingDomainChange(Input):
    """The host name a mailbox's tracking links should use, e.g. `links.example.com`: a
    CNAME to mailramp's public host that you add in your DNS first."""

    domain: Host
