"""Which adapter sends from a mailbox, and which reads its inbox (the protocols are in
`mailboxes/transport.py`)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from mailramp.errors import MailboxUnusableError
from mailramp.kit.clock import Clock, utc_now
from mailramp.mailboxes.models import Mailbox, Provider, TransportSecurity
from mailramp.mailboxes.service import MailboxCredentials
from mailramp.mailboxes.transport import (
    Inbox,
    InboxBatch,
    SendingProvider,
    TendedWarmup,
    TokenSourceFactory,
)
from mailramp.providers.gmail import GMAIL_BASE_URL, GmailClient, GmailInbox, GmailProvider
from mailramp.providers.graph import GRAPH_BASE_URL, GraphClient, GraphInbox, GraphProvider
from mailramp.providers.imap import ImapInbox
from mailramp.providers.smtp import SmtpProvider


class _MailboxAdapters:
    """What both registries are told: where connections may go (private hosts, cleartext
    passwords), the OAuth token sources (Outlook and Gmail mailboxes are unusable without
    them), the API base URLs, the SMTP timeout and the clock."""

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
        self._allow_private_hosts = allow_private_hosts
        self._allow_cleartext_login = allow_cleartext_login
        self._tokens = tokens
        self._graph_url = graph_url
        self._gmail_url = gmail_url
        self._smtp_timeout_seconds = smtp_timeout_seconds
        self._clock = clock  # how far off a time Gmail names is (its sending limit)
        # Gmail's "not before" times outlive each GmailProvider the registry builds.
        self._gmail_sending_pauses: dict[str, datetime] = {}

    def _graph(self, mailbox: Mailbox, credentials: MailboxCredentials) -> GraphClient:
        assert self._tokens is not None  # checked by the caller: no tokens, no Graph
        return GraphClient(self._tokens(mailbox, credentials), base_url=self._graph_url)

    def _gmail(self, mailbox: Mailbox, credentials: MailboxCredentials) -> GmailClient:
        assert self._tokens is not None  # checked by the caller: no tokens, no Gmail API
        return GmailClient(
            self._tokens(mailbox, credentials), base_url=self._gmail_url, clock=self._clock
        )


class DefaultProviders(_MailboxAdapters):
    """SMTP mailboxes send through SmtpProvider; Outlook mailboxes through GraphProvider
    and Gmail mailboxes through GmailProvider when `tokens` is given (without it they are
    unusable)."""

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
            return GraphProvider(mailbox.email, self._graph(mailbox, credentials))
        if mailbox.provider is Provider.GMAIL and self._tokens is not None:
            return GmailProvider(
                mailbox.email,
                self._gmail(mailbox, credentials),
                sending_pauses=self._gmail_sending_pauses,
            )
        raise MailboxUnusableError(
            f"sending through the {mailbox.provider} API is not available in this version of "
            "mailramp; link the mailbox as an SMTP account to send from it"
        )


class DefaultInboxes(_MailboxAdapters):
    """SMTP mailboxes with an IMAP host are read over IMAP; Outlook mailboxes through
    Graph and Gmail mailboxes through the Gmail API when `tokens` is given."""

    def __call__(self, mailbox: Mailbox, credentials: MailboxCredentials) -> Inbox:
        if mailbox.provider is Provider.OUTLOOK and self._tokens is not None:
            graph = self._graph(mailbox, credentials)
            return _ClosingInbox(GraphInbox(graph, clock=self._clock), graph)
        if mailbox.provider is Provider.GMAIL and self._tokens is not None:
            gmail = self._gmail(mailbox, credentials)
            return _ClosingInbox(GmailInbox(gmail, clock=self._clock), gmail)
        if mailbox.provider is not Provider.SMTP or not mailbox.imap_host:
            raise MailboxUnusableError(f"no inbox reader for {mailbox.provider} mailboxes yet")
        if credentials.password is None:
            raise MailboxUnusableError("the mailbox has no password for IMAP")
        return ImapInbox(
            host=mailbox.imap_host,
            port=mailbox.imap_port,
            security=mailbox.imap_security or TransportSecurity.TLS,
            username=mailbox.imap_username or mailbox.smtp_username or mailbox.email,
            password=credentials.password.get_secret_value(),
            allow_private_hosts=self._allow_private_hosts,
            allow_cleartext_login=self._allow_cleartext_login,
        )


class _ClosingInbox:
    """A Graph or Gmail inbox whose HTTP client is closed after each read (the poller
    makes a new reader per check)."""

    def __init__(self, inbox: GraphInbox | GmailInbox, client: GraphClient | GmailClient) -> None:
        self._inbox = inbox
        self._client = client

    async def fetch_new(self, *, uid_validity: int | None, last_uid: int | None) -> InboxBatch:
        try:
            return await self._inbox.fetch_new(uid_validity=uid_validity, last_uid=last_uid)
        finally:
            await self._client.close()

    async def tend_warmup(self, message_ids: Collection[str]) -> list[TendedWarmup]:
        try:
            return await self._inbox.tend_warmup(message_ids)
        finally:
            await self._client.close()
