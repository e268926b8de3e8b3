"""What callers send to link or change a mailbox. Secrets are write-only `SecretStr`s."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, SecretStr, StringConstraints, model_validator

from mailramp.kit.types import EmailAddress, Input, UTCDateTime
from mailramp.kit.validation import zone_problem
from mailramp.mailboxes.models import (
    DEFAULT_DAILY_LIMIT,
    BrakeRules,
    Provider,
    TransportSecurity,
)

Host = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=253)]
Port = Annotated[int, Field(ge=1, le=65535)]
DailyLimit = Annotated[int, Field(ge=1, le=10_000)]
RampStart = Annotated[int, Field(ge=1, le=10_000)]
RampStep = Annotated[int, Field(ge=1, le=1_000)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
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


def _time_zone(value: str) -> str:
    problem = zone_problem(value)
    if problem:
        raise ValueError(problem)
    return value


TimeZoneName = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=64), AfterValidator(_time_zone)
]


class ServerSettings(Input):
    """Where an SMTP mailbox sends, and reads replies from (IMAP); unset on Outlook and
    Gmail mailboxes."""

    smtp_host: Host | None = None
    smtp_port: Port | None = None
    smtp_security: TransportSecurity | None = None
    smtp_username: str | None = None
    imap_host: Host | None = None
    imap_port: Port | None = None
    imap_security: TransportSecurity | None = None
    imap_username: str | None = None


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
    """A mailbox to link. Outlook and Gmail need an OAuth token; SMTP needs a host and password."""

    email: EmailAddress
    provider: Provider
    password: SecretStr | None = Field(default=None, repr=False)
    access_token: SecretStr | None = Field(default=None, repr=False)
    refresh_token: SecretStr | None = Field(default=None, repr=False)
    token_expires_at: UTCDateTime | None = None
    user_profile: dict[str, Any] = Field(default_factory=dict)
    display_name: DisplayName | None = None
    daily_limit: DailyLimit = DEFAULT_DAILY_LIMIT

    @model_validator(mode="after")
    def _credentials_fit_provider(self) -> MailboxCreate:
        if self.provider is Provider.SMTP:
            if self.smtp_host is None:
                raise ValueError("smtp_host is required for provider 'smtp'")
            if self.password is None:
                raise ValueError("password is required for provider 'smtp'")
        elif self.access_token is None and self.refresh_token is None:
            raise ValueError(
                f"access_token or refresh_token is required for provider '{self.provider}'"
            )
        return self


class MailboxUpdate(ServerSettings, DeliverabilitySettings):
    """Changes to a mailbox; fields left out stay as they are. Secrets given are replaced."""

    password: SecretStr | None = Field(default=None, repr=False)
    access_token: SecretStr | None = Field(default=None, repr=False)
    refresh_token: SecretStr | None = Field(default=None, repr=False)
    token_expires_at: UTCDateTime | None = None
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

    domain: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=253)]
