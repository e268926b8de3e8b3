"""An SMTP sink for benchmarks: aiosmtpd on loopback that accepts any login, counts and
discards every message, and prints the count when terminated. Runs as its own process so
its CPU does not compete with the client being measured."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class CountingSink:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += len(envelope.rcpt_tos)
        return "250 OK"


def _accept(*_: Any) -> AuthResult:
    return AuthResult(success=True)


def main() -> None:
    port = int(sys.argv[1])
    handler = CountingSink()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, auth_require_tls=False, authenticator=_accept
    )
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    print(handler.count, flush=True)


if __name__ == "__main__":
    main()
