"""Sending through any SMTP server with aiosmtplib: implicit TLS, STARTTLS or plain.

One connection per mailbox, reused between sends and re-opened when the server drops it.
The SMTP phase an error happens in decides its meaning: before DATA nothing left (retry);
a reply to DATA's end is definite (4xx retry, 5xx bounce); a broken connection after DATA
began may have delivered the message (uncertain). Every wait for the server is bounded by
`timeout`; a server that cannot be reached or stays silent that long before DATA is
unavailable (ServerUnavailableError): the worker tries it again in a later pass.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from email.message import Message
from typing import ClassVar

import aiosmtplib

from mailramp.errors import (
    CleartextLoginError,
    ForbiddenHostError,
    HostLookupError,
    MailboxUnusableError,
    PermanentSendError,
    ServerUnavailableError,
    TransientSendError,
    UncertainSendError,
    UnknownHostError,
)
from mailramp.kit.network import ResolvedHost, check_cleartext_login, connect, resolve_host
from mailramp.mailboxes.models import TransportSecurity

DEFAULT_PORTS = {
    TransportSecurity.TLS: 465,
    TransportSecurity.STARTTLS: 587,
    TransportSecurity.PLAIN: 25,
}


async def resolve_mailbox_host(
    host: str,
    port: int,
    *,
    allow_private: bool,
    cleartext_login: bool = False,
    allow_cleartext_login: bool = False,
) -> ResolvedHost:
    """Resolve a mailbox's server once and check where it points (kit/network.py), as a
    provider error: a forbidden or non-existent host or a refused cleartext login makes the
    mailbox unusable until its owner acts; a resolver that failed for now is transient."""
    try:
        target = await resolve_host(host, port, allow_private=allow_private)
        if cleartext_login:
            check_cleartext_login(target, allowed=allow_cleartext_login)
    except (ForbiddenHostError, UnknownHostError, CleartextLoginError) as error:
        raise MailboxUnusableError(str(error)) from None
    except HostLookupError as error:
        raise TransientSendError(f"{error}; will try again") from None
    return target


class MailServer:
    """A mailbox's account on an SMTP or IMAP server: where it is, how the connection is
    protected, the login, and where connections may go (private hosts, cleartext logins)."""

    DEFAULT_PORTS: ClassVar[Mapping[TransportSecurity, int]] = DEFAULT_PORTS
    DEFAULT_TIMEOUT: ClassVar[float] = 60

    def __init__(
        self,
        *,
        host: str,
        port: int | None,
        security: TransportSecurity,
        username: str | None,
        password: str | None,
        allow_private_hosts: bool = False,
        allow_cleartext_login: bool = False,
        timeout: float | None = None,
    ) -> None:
        self._host = host
        self._port = port or self.DEFAULT_PORTS[security]
        self._security = security
        self._username = username
        self._password = password
        self._allow_private = allow_private_hosts
        self._allow_cleartext_login = allow_cleartext_login
        self._timeout = self.DEFAULT_TIMEOUT if timeout is None else timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._host}:{self._port}, {self._security})"

    async def _resolve(self, *, logs_in: bool) -> ResolvedHost:
        """The server's checked addresses; a login over a plain connection must be allowed."""
        return await resolve_mailbox_host(
            self._host,
            self._port,
            allow_private=self._allow_private,
            cleartext_login=logs_in and self._security is TransportSecurity.PLAIN,
            allow_cleartext_login=self._allow_cleartext_login,
        )


class SmtpProvider(MailServer):
    """A Provider for one SMTP mailbox."""

    _client: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        logs_in = bool(self._username) and self._password is not None
        target = await self._resolve(logs_in=logs_in)
        try:
            sock = await connect(target, seconds_per_address=self._timeout)
        except OSError as error:
            raise ServerUnavailableError(str(error)) from None
        # Connected to the address that was checked; the name is what TLS verifies (SNI and
        # the certificate), for implicit TLS and STARTTLS alike.
        client = aiosmtplib.SMTP(
            hostname=self._host,
            sock=sock,
            use_tls=self._security is TransportSecurity.TLS,
            start_tls=self._security is TransportSecurity.STARTTLS,
            timeout=self._timeout,
        )
        try:
            await client.connect()
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError, OSError) as error:
            sock.close()
            raise ServerUnavailableError(
                f"cannot connect to {target}: {error.__cause__ or error}"
            ) from None
        except aiosmtplib.SMTPResponseException as error:
            sock.close()
            raise ServerUnavailableError(
                f"{self._host} refused the connection: {error.code} {error.message}",
                smtp_code=error.code,
            ) from None
        if logs_in:
            assert self._username is not None and self._password is not None
            try:
                await client.login(self._username, self._password)
            except aiosmtplib.SMTPAuthenticationError as error:
                await _quietly_close(client)
                raise MailboxUnusableError(
                    f"{self._host} rejected the login: {error.code} {error.message}",
                    smtp_code=error.code,
                ) from None
            except aiosmtplib.SMTPException as error:
                await _quietly_close(client)
                raise ServerUnavailableError(f"login to {self._host} failed: {error}") from None
        self._client = client
        return client

    async def check(self) -> None:
        """Connect and log in (then leave): what "test connection" does."""
        await self._connected()
        await self.close()

    async def send(self, message: Message, *, sender: str, recipient: str) -> None:
        """Send one message (MAIL, RCPT, DATA) on the mailbox's connection."""
        client = await self._connected()
        try:
            await client.mail(sender)
            await client.rcpt(recipient)
        except aiosmtplib.SMTPResponseException as error:
            await self._reset(client)
            if error.code >= 500 and not isinstance(error, aiosmtplib.SMTPRecipientRefused):
                # The server refuses the sender, not the recipient (an account suspended or
                # not allowed to send as this address): the mailbox is the problem, and
                # the recipients must not be counted as bounced or suppressed.
                raise MailboxUnusableError(
                    f"the server refused to send as {sender}: {error.code} {error.message}",
                    smtp_code=error.code,
                ) from None
            raise _refusal(
                error,
                phase="RCPT" if isinstance(error, aiosmtplib.SMTPRecipientRefused) else "MAIL",
            ) from None
        except aiosmtplib.SMTPTimeoutError as error:
            await self._drop()
            raise ServerUnavailableError(
                f"no answer before DATA within {self._timeout:g} s: {error}"
            ) from None
        except (aiosmtplib.SMTPServerDisconnected, OSError) as error:
            # Often a reused connection the server closed while idle: the next send
            # reconnects.
            await self._drop()
            raise TransientSendError(f"connection lost before DATA: {error}") from None
        try:
            await client.data(message.as_bytes())
        except aiosmtplib.SMTPResponseException as error:
            await self._reset(client)
            raise _refusal(error, phase="DATA") from None
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as error:
            await self._drop()
            raise UncertainSendError(
                f"connection lost during DATA; the server may have accepted the message: {error}"
            ) from None

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            await self._drop()

    async def _drop(self) -> None:
        if self._client is not None:
            await _quietly_close(self._client)
        self._client = None

    async def close(self) -> None:
        """QUIT and close the connection."""
        await self._drop()


def _refusal(
    error: aiosmtplib.SMTPResponseException, *, phase: str
) -> TransientSendError | PermanentSendError:
    text = f"{phase} refused: {error.code} {error.message}"
    if 400 <= error.code < 500:
        return TransientSendError(text, smtp_code=error.code)
    return PermanentSendError(text, smtp_code=error.code)


async def _quietly_close(client: aiosmtplib.SMTP) -> None:
    """Close a connection that failed or is no longer wanted, without raising."""
    transport = client.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if client.is_connected:
        # QUIT lets the server (and a TLS layer) close cleanly.
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await asyncio.wait_for(client.quit(), timeout=5)
    with contextlib.suppress(aiosmtplib.SMTPException, OSError):
        client.close()
    # A TLS transport closes its socket only after its shutdown exchange; wait for that
    # (briefly) so a connection never outlives the provider that owned it.
    for _ in range(CLOSE_WAIT_STEPS):
        if sock is None or sock.fileno() == -1:
            break
        await asyncio.sleep(0.01)


CLOSE_WAIT_STEPS = 100
