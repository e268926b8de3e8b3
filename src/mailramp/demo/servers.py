"""The demo's stand-ins for the outside world, on loopback: an SMTP server that plays the
recipients' mail servers (it rejects addresses that do not exist, as real ones do), and an
IMAP server per demo mailbox (pymap, run as a child process) holding its inbox, where the
simulated people's replies and the bounce reports land. Mail between the demo mailboxes
(their warm-up) is delivered into those IMAP servers, and a spam filter of the demo's own
files every fifth email from each sender in Junk."""

from __future__ import annotations

import asyncio
import imaplib
import logging
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from mailramp.errors import ConfigurationError

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
except ImportError as missing:  # pragma: no cover - the demo extra is installed by scripts/
    raise ConfigurationError(
        "the demo needs its extra packages: pip install 'mailramp[demo]'"
    ) from missing

UNKNOWN_MAILBOX_PREFIX = "nobody."
JUNK_EVERY = 5
"""The demo's spam filter files every fifth email from each sender among the demo mailboxes
in Junk: an inbox placement of 80 % or more, above the placement brake's 70 %."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Delivered:
    """One email as the recipient's server received it."""

    recipient: str
    message: EmailMessage


class RecipientServers:
    """An SMTP server on loopback accepting mail for every address except those starting
    with `nobody.` (550 5.1.1, a hard bounce at send time), from the demo mailboxes
    (`logins`: address → password). An email to a demo mailbox's own address goes into its
    IMAP server (`local`), to INBOX or Junk; every other one goes to `delivered` on the
    demo's event loop."""

    def __init__(
        self,
        logins: dict[str, str],
        loop: asyncio.AbstractEventLoop,
        local: Mapping[str, DemoInbox] | None = None,
    ) -> None:
        self.port = free_port()
        self.delivered: asyncio.Queue[Delivered] = asyncio.Queue()
        self.filed_in_junk = 0
        self._loop = loop
        self._logins = dict(logins)
        self._local = dict(local or {})
        self._from_sender: Counter[str] = Counter()
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            ready_timeout=10,
            auth_require_tls=False,
            authenticator=self._authenticate,
        )

    def _authenticate(self, *args: Any) -> AuthResult:
        data = args[-1]
        ok = (
            isinstance(data, LoginPassword)
            and self._logins.get(data.login.decode()) == data.password.decode()
        )
        return AuthResult(success=ok)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.lower().startswith(UNKNOWN_MAILBOX_PREFIX):
            return "550 5.1.1 The email account that you tried to reach does not exist"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        for recipient in envelope.rcpt_tos:
            inbox = self._local.get(recipient.lower())
            if inbox is not None:
                await asyncio.to_thread(inbox.append, envelope.content, self._folder(envelope))
                continue
            delivered = Delivered(recipient.lower(), message)
            self._loop.call_soon_threadsafe(self.delivered.put_nowait, delivered)
        return "250 2.0.0 Ok: queued"

    def _folder(self, envelope: Any) -> str:
        sender = str(envelope.mail_from).lower()
        self._from_sender[sender] += 1
        if self._from_sender[sender] % JUNK_EVERY:
            return "INBOX"
        self.filed_in_junk += 1
        return "Junk"

    def start(self) -> RecipientServers:
        # aiosmtpd logs a deprecation of its own at every login; the demo's output is ours.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


class DemoInbox:
    """The demo mailbox's IMAP server: pymap's in-memory server as a child process, with
    an INBOX and a Junk folder."""

    def __init__(self, login: str, password: str) -> None:
        self.port = free_port()
        self.login, self.password = login, password
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> DemoInbox:
        try:
            import pymap  # noqa: F401
        except ImportError as missing:  # pragma: no cover
            raise ConfigurationError(
                "the demo needs its extra packages: pip install 'mailramp[demo]'"
            ) from missing
        command = [
            sys.executable,
            "-c",
            "from pymap.main import main; main()",
            "--host", "127.0.0.1", "--port", str(self.port),
            # `--option=value`: a random password may begin with "-", which argparse would
            # take for an option of its own (the demo then failed about 1 run in 64).
            "dict", f"--demo-user={self.login}", f"--demo-password={self.password}",
        ]  # fmt: skip
        quiet, pipe = subprocess.DEVNULL, subprocess.PIPE
        self._process = subprocess.Popen(command, stdout=quiet, stderr=pipe)  # noqa: S603
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode() if self._process.stderr else ""
                raise ConfigurationError(f"the demo's IMAP server did not start: {error[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ConfigurationError(
                        "the demo's IMAP server did not start in time"
                    ) from None
                time.sleep(0.1)
                continue
            self._create("Junk")
            return self

    def _create(self, folder: str) -> None:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            client.login(self.login, self.password)
            client.create(folder)
        finally:
            client.logout()

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        """Put a message in a folder (IMAP APPEND), as the mail server would on delivery."""
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            client.login(self.login, self.password)
            status, detail = client.append(folder, None, None, raw)
            if status != "OK":
                raise RuntimeError(f"IMAP APPEND refused: {detail!r}")
        finally:
            client.logout()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
