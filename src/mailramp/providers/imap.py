"""Reading an inbox over IMAP (stdlib imaplib, run in a thread): implicit TLS, STARTTLS or
plain; only messages newer than the last UID read. The host is resolved and checked once
(kit/network.py) and imaplib connects to the address checked, never resolving it again."""

from __future__ import annotations

import asyncio
import imaplib
import re
import socket
import ssl
from collections.abc import Collection

from mailramp.errors import MailboxUnusableError, TransientSendError
from mailramp.kit.network import ResolvedHost, connect_blocking
from mailramp.mailboxes.models import TransportSecurity
from mailramp.mailboxes.transport import InboxBatch, TendedWarmup
from mailramp.providers.smtp import MailServer

DEFAULT_PORTS = {
    TransportSecurity.TLS: 993,
    TransportSecurity.STARTTLS: 143,
    TransportSecurity.PLAIN: 143,
}
BATCH = 200
SPAM_NAMES = frozenset({"junk", "spam", "junk e-mail", "junk email", "bulk mail", "[gmail]/spam"})
"""Folder names taken as spam when the server marks none with the \\Junk special use."""
SKIPPED_USES = frozenset({"\\sent", "\\drafts", "\\noselect", "\\nonexistent", "\\all"})
_LIST_LINE = re.compile(rb'\((?P<flags>[^)]*)\) (?P<delimiter>"[^"]*"|NIL) (?P<name>.+)')


class ImapInbox(MailServer):
    """One mailbox's INBOX (IMAP always logs in)."""

    DEFAULT_PORTS = DEFAULT_PORTS
    DEFAULT_TIMEOUT = 30

    async def fetch_new(self, *, uid_validity: int | None, last_uid: int | None) -> InboxBatch:
        """Messages after `last_uid` (all of them if the inbox's UIDVALIDITY changed)."""
        target = await self._resolve(logs_in=True)
        return await asyncio.to_thread(self._fetch, target, uid_validity, last_uid)

    async def tend_warmup(self, message_ids: Collection[str]) -> list[TendedWarmup]:
        """Find the warm-up emails `message_ids` in every folder (SEARCH HEADER Message-ID),
        mark each read and flagged, and MOVE those in spam to INBOX."""
        target = await self._resolve(logs_in=True)
        wanted = {message_id.strip() for message_id in message_ids}
        return await asyncio.to_thread(self._tend, target, wanted)

    def _tend(self, target: ResolvedHost, wanted: set[str]) -> list[TendedWarmup]:
        client = self._connect(target)
        tended: list[TendedWarmup] = []
        try:
            status, data = client.capability()  # after login: MOVE may only show now
            can_move = status == "OK" and b"MOVE" in (data[0] or b"").upper().split()
            for name, flags in _folders(client):
                if flags & SKIPPED_USES:
                    continue
                is_spam = "\\junk" in flags or name.lower() in SPAM_NAMES
                placement = "inbox" if name.upper() == "INBOX" else "spam" if is_spam else "other"
                if client.select(_quoted(name))[0] != "OK":
                    continue
                for uid, message_id in _message_ids(client, wanted):
                    client.uid("STORE", uid, "+FLAGS", "(\\Seen \\Flagged)")
                    rescued = placement == "spam"
                    if rescued:
                        _move(client, uid, "INBOX", can_move=can_move)
                    tended.append(TendedWarmup(message_id, placement, name, rescued))
                    wanted.discard(message_id)
                client.close()
                if not wanted:
                    break
            return tended
        except (OSError, imaplib.IMAP4.error) as error:
            raise TransientSendError(f"tending warm-up emails failed: {error}") from None
        finally:
            try:
                client.logout()
            except (OSError, imaplib.IMAP4.error):
                client.shutdown()

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


def _folders(client: imaplib.IMAP4) -> list[tuple[str, frozenset[str]]]:
    """Every folder's name and its flags (lower case), INBOX first."""
    status, lines = client.list()
    folders = []
    for line in lines if status == "OK" else []:
        if not isinstance(line, bytes):
            continue
        found = _LIST_LINE.match(line)
        if found is None:
            continue
        flags = frozenset(flag.lower() for flag in found.group("flags").decode().split())
        name = found.group("name").decode().strip()
        if name.startswith('"') and name.endswith('"'):
            name = name[1:-1].replace('\\"', '"')
        folders.append((name, flags))
    folders.sort(key=lambda folder: folder[0].upper() != "INBOX")
    return folders


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _message_ids(client: imaplib.IMAP4, wanted: Collection[str]) -> list[tuple[str, str]]:
    """(UID, Message-ID) of the selected folder's messages among `wanted`, one header
    search each (Message-IDs are random: a search finds one message or none)."""
    found = []
    for message_id in sorted(wanted):
        status, data = client.uid("SEARCH", "HEADER", "Message-ID", _quoted(message_id))
        uids = (data[0] or b"").split() if status == "OK" and data else []
        found += [(uid.decode(), message_id) for uid in uids[:1]]
    return found


def _move(client: imaplib.IMAP4, uid: str, folder: str, *, can_move: bool) -> None:
    """Move one message (RFC 6851 MOVE, or COPY then delete where the server lacks it)."""
    if can_move:
        client.uid("MOVE", uid, folder)
        return
    client.uid("COPY", uid, folder)
    client.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
    client.expunge()


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
