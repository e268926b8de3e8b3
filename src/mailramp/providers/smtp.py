"""Sending through any SMTP server with aiosmtplib: implicit TLS, STARTTLS or plain.

One connection per mailbox, reused between sends and re-opened when the server drops it.
The SMTP phase an error happens in decides its meaning: before DATA nothing left (retry);
a reply to DATA's end is definite (4xx retry, 5xx bounce); a broken connection after DATA
began may have delivered the message (uncertain).
"""

from __future__ import annotations

import asyncio
import contextlib
from email.message import Message

import aiosmtplib

from mailramp.kit.network import ForbiddenHostError, check_public_host
from mailramp.mailboxes.models import TransportSecurity
from mailramp.providers import (
    MailboxUnusableError,
    PermanentSendError,
    TransientSendError,
    UncertainSendError,
)

DEFAULT_PORTS = {
    TransportSecurity.TLS: 465,
    TransportSecurity.STARTTLS: 587,
    TransportSecurity.PLAIN: 25,
}


class SmtpProvider:
    """A Provider for one SMTP mailbox."""

    def __init__(
        self,
        *,
        host: str,
        port: int | None,
        security: TransportSecurity,
        username: str | None,
        password: str | None,
        allow_private_hosts: bool = False,
        timeout: float = 60,
    ) -> None:
        self._host = host
        self._port = port or DEFAULT_PORTS[security]
        self._security = security
        self._username = username
        self._password = password
        self._allow_private = allow_private_hosts
        self._timeout = timeout
        self._client: aiosmtplib.SMTP | None = None

    def __repr__(self) -> str:
        return f"SmtpProvider({self._host}:{self._port}, {self._security})"

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        try:
            await check_public_host(self._host, self._port, allow_private=self._allow_private)
        except ForbiddenHostError as error:
            raise MailboxUnusableError(str(error)) from None
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            use_tls=self._security is TransportSecurity.TLS,
            start_tls=self._security is TransportSecurity.STARTTLS,
            timeout=self._timeout,
        )
        try:
            await client.connect()
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError, OSError) as error:
            raise TransientSendError(
                f"cannot connect to {self._host}:{self._port}: {error}"
            ) from None
        except aiosmtplib.SMTPResponseException as error:
            raise TransientSendError(
                f"{self._host} refused the connection: {error.code} {error.message}",
                smtp_code=error.code,
            ) from None
        if self._username and self._password is not None:
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
                raise TransientSendError(f"login to {self._host} failed: {error}") from None
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
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as error:
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
