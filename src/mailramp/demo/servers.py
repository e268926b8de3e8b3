"""The demo's stand-ins for the outside world, on loopback: an SMTP server that plays the
recipients' mail servers (it rejects addresses that do not exist, as real ones do), and an
IMAP server per demo mailbox (pymap, run as a child process) holding its inbox, where the
simulated people's replies and the bounce reports land."""

from __future__ import annotations

import asyncio
import imaplib
import logging
import socket
import subprocess
import sys
import time
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
    (`logins`: address → password). Each accepted email goes to `delivered` on the
    demo's event loop."""

    def __init__(self, logins: dict[str, str], loop: asyncio.AbstractEventLoop) -> None:
        self.port = free_port()
        self.delivered: asyncio.Queue[Delivered] = asyncio.Queue()
        self._loop = loop
        self._logins = dict(logins)
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
            delivered = Delivered(recipient.lower(), message)
            self._loop.call_soon_threadsafe(self.delivered.put_nowait, delivered)
        return "250 2.0.0 Ok: queued"

    def start(self) -> RecipientServers:
        # aiosmtpd logs a deprecation of its own at every login; the demo's output is ours.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


class DemoInbox:
    """The demo mailbox's IMAP inbox: pymap's in-memory server as a child process."""

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
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ConfigurationError(
                        "the demo's IMAP server did not start in time"
                    ) from None
                time.sleep(0.1)

    def append(self, raw: bytes) -> None:
        """Put a message in the inbox (IMAP APPEND), as the mail server would on delivery."""
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            client.login(self.login, self.password)
            status, detail = client.append("INBOX", None, None, raw)
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
