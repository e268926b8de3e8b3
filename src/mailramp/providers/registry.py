"""Which Provider sends for a mailbox."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from mailramp.kit.clock import Clock, utc_now
from mailramp.mailboxes.models import Mailbox, Provider, TransportSecurity
from mailramp.mailboxes.service import MailboxCredentials
from mailramp.providers import MailboxUnusableError, TokenSource
from mailramp.providers import Provider as SendingProvider
from mailramp.providers.gmail import GMAIL_BASE_URL, GmailProvider
from mailramp.providers.graph import GRAPH_BASE_URL, GraphProvider
from mailramp.providers.smtp import SmtpProvider


class ProviderFactory(Protocol):
    """Builds the Provider for a mailbox from its settings and decrypted credentials."""

    def __call__(self, mailbox: Mailbox, credentials: MailboxCredentials) -> SendingProvider:
        """A provider ready to connect on first send."""
        ...


class TokenSourceFactory(Protocol):
    """Builds the TokenSource of an OAuth mailbox (`oauth.tokens.MailboxTokenSources`)."""

    def __call__(self, mailbox: Mailbox, credentials: MailboxCredentials) -> TokenSource:
        """A token source for the mailbox, refreshing (and storing) its tokens."""
        ...


class DefaultProviders:
    """SMTP mailboxes send through SmtpProvider; Outlook mailboxes through GraphProvider
    and Gmail mailboxes through GmailProvider when `tokens` is given (without it they are
    unusable)."""

    def __init__(
        self,
        *,
        allow_private_hosts: bool = False,
        allow_cleartext_login: bool = False,
        tokens: TokenSourceFactory | None = None,
        graph_url: str = GRAPH_BASE_URL,
        gmail_url: str = GMAIL_BASE_URL,
        smtp_timeout_seconds: float = 60,
        clock: Clock = utc_now,
    ) -> None:
        self._clock = clock  # how far off a time Gmail names is (its sending limit)
        self._gmail_sending_pauses: dict[str, datetime] = {}  # outlive each GmailProvider
        self._smtp_timeout_seconds = smtp_timeout_seconds
        self._allow_private_hosts = allow_private_hosts
        self._allow_cleartext_login = allow_cleartext_login
        self._tokens = tokens
        self._graph_url = graph_url
        self._gmail_url = gmail_url

    def __call__(self, mailbox: Mailbox, credentials: MailboxCredentials) -> SendingProvider:
        if mailbox.provider is Provider.SMTP:
            if mailbox.smtp_host is None:
                raise MailboxUnusableError("the mailbox has no smtp_host")
            password = credentials.password.get_secret_value() if credentials.password else None
            return SmtpProvider(
                host=mailbox.smtp_host,
                port=mailbox.smtp_port,
                security=mailbox.smtp_security or TransportSecurity.STARTTLS,
                username=mailbox.smtp_username or mailbox.email,
                password=password,
                allow_private_hosts=self._allow_private_hosts,
                allow_cleartext_login=self._allow_cleartext_login,
                timeout=self._smtp_timeout_seconds,
            )
        if mailbox.provider is Provider.OUTLOOK and self._tokens is not None:
            return GraphProvider(
                mailbox.email, self._tokens(mailbox, credentials), base_url=self._graph_url
            )
        if mailbox.provider is Provider.GMAIL and self._tokens is not None:
            return GmailProvider(
                mailbox.email,
                self._tokens(mailbox, credentials),
                base_url=self._gmail_url,
                clock=self._clock,
                sending_pauses=self._gmail_sending_pauses,
            )
        raise MailboxUnusableError(
            f"sending through the {mailbox.provider} API is not available in this version of "
            "mailramp; link the mailbox as an SMTP account to send from it"
        )
