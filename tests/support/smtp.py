"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives and can be told to
refuse recipients, for a while or for good."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.postgres import free_port


@dataclass
class Received:
    """One message as the server got it."""

    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class Inbox:
    """What the server received, and the replies it is told to give."""

    messages: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """Per recipient, replies to give to RCPT before accepting (consumed one per attempt);
    a reply ending in '!' is given every time."""
    mail_replies: dict[str, str] = field(default_factory=dict)
    """Per sender, a reply to give to every MAIL FROM (e.g. an account the server disabled)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    accounts: dict[str, str] = field(default_factory=dict)
    """Logins the server accepts (AUTH PLAIN/LOGIN, allowed without TLS on loopback)."""
    logins: list[str] = field(default_factory=list)
    data_delay: float = 0.0
    """Seconds the server takes to answer DATA (a slower sink makes crashes land mid-send)."""
    lmtp_port: int | None = None
    """Where each accepted message is delivered on (Dovecot's LMTP): the SMTP server of a
    whole mail system on loopback."""

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [r.message for r in self.messages if address in r.recipients]

    def count_by_recipient(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        with self.lock:
            for received in self.messages:
                for recipient in received.recipients:
                    counts[recipient] += 1
        return dict(counts)


def _deliver(port: int, sender: str, recipients: list[str], content: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", port) as lmtp:
        lmtp.sendmail(sender, recipients, content)


class _Handler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: Any
    ) -> str:
        with self.inbox.lock:
            reply = self.inbox.mail_replies.get(address)
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        with self.inbox.lock:
            replies = self.inbox.rcpt_replies.get(address)
            if replies:
                reply = replies[0]
                if reply.endswith("!"):
                    return reply[:-1]
                replies.pop(0)
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.inbox.data_delay:
            await asyncio.sleep(self.inbox.data_delay)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        if self.inbox.lmtp_port is not None:
            await asyncio.to_thread(
                _deliver, self.inbox.lmtp_port, envelope.mail_from, envelope.rcpt_tos,
                envelope.content,
            )  # fmt: skip
        with self.inbox.lock:
            self.inbox.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), message)
            )
        return "250 Message accepted for delivery"


class SmtpServer:
    """Started on a free loopback port; stop() when done."""

    def __init__(
        self,
        accounts: dict[str, str] | None = None,
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        lmtp_port: int | None = None,
    ) -> None:
        self.inbox = Inbox(accounts=dict(accounts or {}), lmtp_port=lmtp_port)
        self.port = free_port()
        options: dict[str, Any] = {}
        if starttls is not None:
            options |= {"tls_context": starttls, "require_starttls": True}
        if implicit_tls is not None:
            options["ssl_context"] = implicit_tls
        self._controller = Controller(
            _Handler(self.inbox),
            hostname="127.0.0.1",
            port=self.port,
            ready_timeout=10,
            auth_require_tls=starttls is not None,
            authenticator=self._authenticate,
            **options,
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode()
        ok = self.inbox.accounts.get(login) == auth_data.password.decode()
        if ok:
            with self.inbox.lock:
                self.inbox.logins.append(login)
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
