"""Which Provider sends for a mailbox."""

from __future__ import annotations

from typing import Protocol

from mailramp.mailboxes.models import Mailbox, Provider, TransportSecurity
from mailramp.mailboxes.service import MailboxCredentials
from mailramp.providers import MailboxUnusableError
from mailramp.providers import Provider as SendingProvider
from mailramp.providers.smtp import SmtpProvider


class ProviderFactory(Protocol):
    """Builds the Provider for a mailbox from its settings and decrypted credentials."""

    def __call__(self, mailbox: Mailbox, credentials: MailboxCredentials) -> SendingProvider:
        """A provider ready to connect on first send."""
        ...


class DefaultProviders:
    """SMTP mailboxes send through SmtpProvider."""

    def __init__(self, *, allow_private_hosts: bool = False) -> None:
        self._allow_private_hosts = allow_private_hosts

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
            )
        raise MailboxUnusableError(
            f"sending through the {mailbox.provider} API is not available in this version of "
            "mailramp; link the mailbox as an SMTP account to send from it"
        )
