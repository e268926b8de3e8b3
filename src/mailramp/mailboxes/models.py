"""The `linkbox_box_table` document."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, Self

from pydantic import Field, model_validator

from mailramp.kit.types import ObjectIdStr, Record, UTCDateTime

SECRET_FIELDS = ("password", "access_token", "refresh_token")
"""Mailbox fields stored encrypted, bound to their mailbox and field."""


def check_secret_field(field: str) -> None:
    """ValueError unless `field` is one of the mailbox's encrypted fields."""
    if field not in SECRET_FIELDS:
        raise ValueError(f"{field!r} is not a secret field")


DEFAULT_DAILY_LIMIT = 50
DEFAULT_RAMP_START = 10
"""A new mailbox's daily limit on its first sending day (mailboxes/ramp.py)."""
DEFAULT_RAMP_STEP = 2
"""How much its daily limit grows after each day it sent without a brake."""
WARMUP_START = 2
WARMUP_STEP = 2
WARMUP_MAX = 20
WARMUP_REPLY_PERCENT = 30
"""A warm-up pool member's defaults: 2 warm-up emails on its first day, 2 more each day it
warms up, up to 20; it answers 30 % of those it receives (deliverability/warmup.py)."""


@dataclass(frozen=True)
class SendGap:
    """The pause between two sends of one mailbox: drawn at random in [low, high] seconds."""

    low_seconds: float
    high_seconds: float

    def __post_init__(self) -> None:
        if not 0 <= self.low_seconds <= self.high_seconds:
            raise ValueError(
                f"a send gap needs 0 <= low <= high seconds, got "
                f"{self.low_seconds}-{self.high_seconds}"
            )

    @property
    def off(self) -> bool:
        """No pause at all: the mailbox sends as fast as its provider takes the emails."""
        return self.high_seconds == 0

    def draw(self, rng: random.Random) -> timedelta:
        """One gap."""
        return timedelta(seconds=rng.uniform(self.low_seconds, self.high_seconds))

    def daily_cap(self, daily_limit: int, open_hours: float) -> int:
        """What a day can hold at this pace: the daily limit, or fewer when even the longest
        gaps would not fit them into the window's `open_hours` a day (so a late send never
        piles up behind the others until the window closes)."""
        if self.off:
            return daily_limit
        return max(min(daily_limit, int(open_hours * 3600 // self.high_seconds)), 1)

    def __str__(self) -> str:
        return f"{self.low_seconds:g}-{self.high_seconds:g} s"


DEFAULT_SEND_GAP = SendGap(120, 300)
"""Two to five minutes between two emails of one mailbox."""

NO_GAP = SendGap(0, 0)


DEMO_DOMAIN = "mailramp-demo.example"
"""The domain of the mailbox `mailramp demo` links (`.example` is reserved: no real mail
goes there); the dashboard labels it as the demo's."""


class Provider(StrEnum):
    """How mail leaves (and replies are read from) a mailbox."""

    OUTLOOK = "outlook"
    GMAIL = "gmail"
    SMTP = "smtp"


OAUTH_PROVIDERS = (Provider.OUTLOOK, Provider.GMAIL)
"""The providers whose mailboxes are linked over OAuth."""


class MailboxStatus(StrEnum):
    """Whether the mailbox can send: `error` carries a reason in `status_reason`."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    ERROR = "error"


class TransportSecurity(StrEnum):
    """How an SMTP or IMAP connection is protected."""

    TLS = "tls"  # implicit TLS (SMTPS 465, IMAPS 993)
    STARTTLS = "starttls"
    PLAIN = "plain"  # only sensible on loopback or a trusted network


class Verdict(StrEnum):
    """How one DNS check of a mailbox's domain came out."""

    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _VERDICT_RANK[self]

    @staticmethod
    def worst(verdicts: Iterable[Verdict]) -> Verdict | None:
        """The worst of `verdicts` (None when there are none)."""
        return max(verdicts, key=lambda verdict: verdict.rank, default=None)


_VERDICT_RANK = {Verdict.PASS: 0, Verdict.WARN: 1, Verdict.FAIL: 2}


class DnsCheck(Record):
    """One check of the sending domain (`mailboxes/domain_checks.py`): what was found, and
    for a warning or a failure the record to publish, as a zone file writes it."""

    name: str
    verdict: Verdict
    found: str
    record: str | None = None


class BrakeKind(StrEnum):
    """What a brake watched."""

    BOUNCES = "bounces"
    COMPLAINTS = "complaints"
    PLACEMENT = "placement"


class BrakeRules(Record):
    """When a brake stops sending (deliverability/brakes.py); each owner may change them
    per campaign (the bounce rule) and per mailbox (complaints, inbox placement)."""

    bounce_rate_percent: float = Field(default=3.0, gt=0, le=100)
    """A campaign pauses itself when more than this share of its emails bounced…"""
    bounce_min_sends: int = Field(default=20, ge=1, le=1_000_000)
    """…once it sent at least this many."""
    complaint_rate_percent: float = Field(default=0.3, gt=0, le=100)
    """A mailbox stops campaign sends above this complaint rate (Gmail's bulk-sender limit)
    over its last 30 days…"""
    inbox_placement_percent: float = Field(default=70.0, ge=0, le=100)
    """…or when fewer than this share of its warm-up emails reached the inbox over 7 days…"""
    placement_min_emails: int = Field(default=10, ge=1, le=1_000_000)
    """…once at least this many were found by the receiving mailboxes."""


DEFAULT_BRAKE_RULES = BrakeRules()


class MailboxFields(Record):
    """What may be shown of a mailbox: everything but its encrypted secrets."""

    id: ObjectIdStr = Field(alias="_id")
    mailbox_id: ObjectIdStr
    user_id: ObjectIdStr
    email: str
    token_expires_at: UTCDateTime | None = None
    provider: Provider
    user_profile: dict[str, Any] = Field(default_factory=dict)
    is_primary: bool = False
    is_active: bool = True
    status: MailboxStatus = MailboxStatus.ACTIVE
    status_reason: str | None = None
    last_used: UTCDateTime | None = None
    created_at: UTCDateTime
    updated_at: UTCDateTime
    display_name: str | None = None
    daily_limit: int = DEFAULT_DAILY_LIMIT
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: TransportSecurity | None = None
    smtp_username: str | None = None
    imap_host: str | None = None
    imap_port: int | None = None
    imap_security: TransportSecurity | None = None
    imap_username: str | None = None
    unlinked_at: UTCDateTime | None = None
    imap_uid_validity: int | None = None
    imap_last_uid: int | None = None
    inbox_checked_at: UTCDateTime | None = None
    # The mailbox's own tracking domain (mailboxes/tracking_domain.py): in use only while
    # `tracking_domain_verified_at` is set, i.e. the last check that got an answer from DNS
    # found it leads to this server; `tracking_domain_problem` says what the last one found.
    tracking_domain: str | None = None
    tracking_domain_verified_at: UTCDateTime | None = None
    tracking_domain_checked_at: UTCDateTime | None = None
    tracking_domain_problem: str | None = None
    next_send_at: UTCDateTime | None = None
    """Until when its last send holds its turn (the random gap between two of its sends)."""
    # The sending domain's DNS checks (mailboxes/domain_checks.py): the last checks DNS
    # answered, when, and what stopped the last attempt when DNS did not answer.
    dkim_selectors: list[str] = Field(default_factory=list)
    dns_checks: list[DnsCheck] = Field(default_factory=list)
    dns_checked_at: UTCDateTime | None = None
    dns_check_problem: str | None = None
    # The ramp (mailboxes/ramp.py): `daily_limit` is the target; a mailbox not marked
    # `already_warm` starts at `ramp_start` a day and grows by `ramp_step` after each day it
    # sent without a brake.
    already_warm: bool = True
    ramp_start: int = DEFAULT_RAMP_START
    ramp_step: int = DEFAULT_RAMP_STEP
    # The warm-up pool (deliverability/warmup.py): whether it takes part, its own ramp, the
    # share of warm-up emails it answers, and the zone of its business hours.
    warmup_enabled: bool = False
    warmup_start: int = WARMUP_START
    warmup_step: int = WARMUP_STEP
    warmup_max: int = WARMUP_MAX
    warmup_reply_percent: int = WARMUP_REPLY_PERCENT
    warmup_timezone: str = "UTC"
    # A brake (deliverability/brakes.py) stops its campaign sends, not its warm-up, until
    # its owner resumes it: why, and since when.
    brake_rules: BrakeRules | None = None
    """None: the defaults (`DEFAULT_BRAKE_RULES`)."""
    brake_kind: BrakeKind | None = None
    """What the last brake watched (kept after a resume: the grace is per kind)."""
    brake_reason: str | None = None
    braked_at: UTCDateTime | None = None
    brake_resumed_at: UTCDateTime | None = None
    brake_resumed_rate: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _stored_defaults(cls, data: Any) -> Any:
        """Rows stored before a list field existed (NULL there) read as empty."""
        if isinstance(data, dict):
            for name in ("dkim_selectors", "dns_checks"):
                if name in data and data[name] is None:
                    data = {**data, name: []}
        return data

    @model_validator(mode="after")
    def _alias_matches(self) -> Self:
        if self.mailbox_id != self.id:
            raise ValueError("mailbox_id must equal _id")
        return self

    @property
    def domain(self) -> str:
        """The domain it sends as: the part of its address after the @, lower case."""
        return self.email.rsplit("@", 1)[-1].lower()

    @property
    def dns_verdict(self) -> Verdict | None:
        """The worst of its domain's checks (None before the first)."""
        return Verdict.worst(check.verdict for check in self.dns_checks)

    @property
    def is_linked(self) -> bool:
        """False once the user unlinked it (the row stays for the campaigns that used it)."""
        return self.unlinked_at is None

    @property
    def is_demo(self) -> bool:
        """Whether it is the mailbox `mailramp demo` linked, not one that sends real mail."""
        return self.domain == DEMO_DOMAIN

    @property
    def tracking_host(self) -> str | None:
        """The host this mailbox's tracking links use instead of the public address: its
        tracking domain once a check found it leads here."""
        return self.tracking_domain if self.tracking_domain_verified_at else None

    @property
    def status_action(self) -> str:
        """The status change a person may ask for: pause an active mailbox, activate any
        other (an `error` one after its owner fixed the cause)."""
        return "pause" if self.status is MailboxStatus.ACTIVE else "activate"


class Mailbox(MailboxFields):
    """A mailbox a user linked. The secret fields hold ciphertext (see `SECRET_FIELDS`); they
    are excluded from `repr` and serialisation, and only the mailbox service decrypts them."""

    password: str | None = Field(default=None, repr=False, exclude=True)
    access_token: str | None = Field(default=None, repr=False, exclude=True)
    refresh_token: str | None = Field(default=None, repr=False, exclude=True)

    @property
    def has_password(self) -> bool:
        """Whether a password is stored."""
        return self.password is not None

    @property
    def has_access_token(self) -> bool:
        """Whether an OAuth access token is stored."""
        return self.access_token is not None

    @property
    def has_refresh_token(self) -> bool:
        """Whether an OAuth refresh token is stored."""
        return self.refresh_token is not None

    @property
    def can_connect(self) -> bool:
        """Whether mailramp may send from it at all (warm-up goes on under a brake)."""
        return self.is_linked and self.is_active and self.status is MailboxStatus.ACTIVE

    @property
    def can_send(self) -> bool:
        """Whether campaigns may use this mailbox now: it can connect and no brake holds it."""
        return self.can_connect and self.braked_at is None


class MailboxDay(Record):
    """One mailbox's figures for one UTC day (`day`, `YYYY-MM-DD`), rolled up from the
    emails it sent that day (deliverability/history.py): the campaign emails and what became
    of them, its warm-up emails and where the receiving mailboxes found them, whether a
    brake held it that day, and the daily limit that applied. What the ramp, the health
    figures and the charts read."""

    id: ObjectIdStr = Field(alias="_id")
    mailbox_id: ObjectIdStr
    user_id: ObjectIdStr
    day: str
    campaign_sent: int = 0
    bounced: int = 0
    complained: int = 0
    replied: int = 0
    warmup_sent: int = 0
    warmup_inbox: int = 0
    warmup_spam: int = 0
    warmup_other: int = 0
    braked: bool = False
    daily_limit: int | None = None
    updated_at: UTCDateTime

    @property
    def sent(self) -> int:
        """Every email it sent that day: campaigns and warm-up."""
        return self.campaign_sent + self.warmup_sent
