"""Reading an inbox over IMAP (stdlib imaplib, run in a thread): implicit TLS, STARTTLS or
plain; only messages newer than the last UID read. The host is resolved and checked once
(kit/network.py) and imaplib connects to the address checked, never resolving it again."""

from __future__ import annotations

import asyncio
import imaplib
import socket
import ssl

from mailramp.errors import MailboxUnusableError, TransientSendError
from mailramp.kit.network import ResolvedHost, connect_blocking
from mailramp.mailboxes.models import TransportSecurity
from mailramp.mailboxes.transport import InboxBatch
from mailramp.providers.smtp import MailServer

DEFAULT_PORTS = {
    TransportSecurity.TLS: 993,
    TransportSecurity.STARTTLS: 143,
    TransportSecurity.PLAIN: 143,
}
BATCH = 200


class ImapInbox(MailServer):
    """One mailbox's INBOX (IMAP always logs in)."""

    DEFAULT_PORTS = DEFAULT_PORTS
    DEFAULT_TIMEOUT = 30

    async def fetch_new(self, *, uid_validity: int | None, last_uid: int | None) -> InboxBatch:
        """Messages after `last_uid` (all of them if the inbox's UIDVALIDITY changed)."""
        target = await self._resolve(logs_in=True)
        return await asyncio.to_thread(self._fetch, target, uid_validity, last_uid)

    async def check(self) -> None:
        """Connect and log in (then leave): what "test connection" does."""
        target = await self._resolve(logs_in=True)

        def connect_and_leave() -> None:
            client = self._connect(target)
            client.logout()

        await asyncio.to_thread(connect_and_leave)

    def _connect(self, target: ResolvedHost) -> imaplib.IMAP4:
        context = ssl.create_default_context()
        try:
            if self._security is TransportSecurity.TLS:
                client = _PinnedIMAP4(target, timeout=self._timeout, tls=context)
            else:
                client = _PinnedIMAP4(target, timeout=self._timeout)
                if self._security is TransportSecurity.STARTTLS:
                    client.starttls(ssl_context=context)
        except (OSError, imaplib.IMAP4.error) as error:
            raise TransientSendError(
                f"cannot connect to {self._host}:{self._port}: {error}"
            ) from None
        try:
            client.login(self._username or "", self._password or "")  # the registry gives both
        except imaplib.IMAP4.error as error:
            client.shutdown()
            raise MailboxUnusableError(f"{self._host} rejected the IMAP login: {error}") from None
        return client

    def _fetch(
        self, target: ResolvedHost, uid_validity: int | None, last_uid: int | None
    ) -> InboxBatch:
        client = self._connect(target)
        try:
            status, _ = client.select("INBOX", readonly=True)
            if status != "OK":
                raise TransientSendError("cannot open INBOX")
            validity_response = client.response("UIDVALIDITY")[1]
            validity = (
                int(validity_response[0]) if validity_response and validity_response[0] else 0
            )
            start = (last_uid or 0) + 1 if validity == uid_validity else 1
            status, data = client.uid("SEARCH", f"UID {start}:*")
            uids = [int(uid) for uid in (data[0] or b"").split()] if status == "OK" else []
            # "UID n:*" always includes the newest message even when it is older than n.
            uids = sorted(uid for uid in uids if uid >= start)[:BATCH]
            messages = []
            for uid in uids:
                status, parts = client.uid("FETCH", str(uid), "(BODY.PEEK[])")
                for part in parts:
                    if isinstance(part, tuple):
                        messages.append((uid, part[1]))
            return InboxBatch(uid_validity=validity, messages=messages)
        except (OSError, imaplib.IMAP4.error) as error:
            raise TransientSendError(f"reading the inbox failed: {error}") from None
        finally:
            try:
                client.logout()
            except (OSError, imaplib.IMAP4.error):
                client.shutdown()


class _PinnedIMAP4(imaplib.IMAP4):
    """imaplib's client connected to the checked addresses of `target` instead of resolving
    its name again; with `tls`, implicit TLS verified against the name (as IMAP4_SSL does)."""

    def __init__(
        self, target: ResolvedHost, *, timeout: float, tls: ssl.SSLContext | None = None
    ) -> None:
        self._target = target
        self._tls = tls
        super().__init__(target.name, target.port, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        sock = connect_blocking(self._target, timeout=timeout)
        if self._tls is None:
            return sock
        try:
            return self._tls.wrap_socket(sock, server_hostname=self._target.name)
        except BaseException:
            sock.close()
            raise
