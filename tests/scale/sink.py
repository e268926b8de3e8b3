"""A recording SMTP sink for the scale-out test and benchmark: aiosmtpd on loopback, in its
own process (so its CPU does not share a GIL with anything measured), accepting any login.

For every message it keeps the envelope recipients, the Message-ID and the tracking URLs the
message carries (pixel, click links, List-Unsubscribe), taken from the raw bytes with the
quoted-printable body decoded — cheap enough for thousands of messages a second. Nothing is
parsed for the first time in the test: on SIGTERM the sink writes one JSON object per message
to the output file and prints how many it received.

    python tests/scale/sink.py PORT OUTPUT.jsonl
"""

from __future__ import annotations

import binascii
import json
import logging
import re
import signal
import sys
import threading
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

HEADER_END = re.compile(rb"\r?\n\r?\n")
MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
TRACKING_URL = re.compile(rb"https?://[^\s\"'<>]+?/t/[ocu]/[A-Za-z0-9_-]+")


class RecordingSink:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.content
        head = HEADER_END.split(raw, maxsplit=1)[0]
        found = MESSAGE_ID.search(head)
        urls = sorted({url.decode() for url in TRACKING_URL.findall(binascii.a2b_qp(raw))})
        entry = {
            "recipients": list(envelope.rcpt_tos),
            "message_id": found.group(1).decode() if found else None,
            "urls": urls,
        }
        with self.lock:
            self.received.append(entry)
        return "250 OK"


def _accept(*_: Any) -> AuthResult:
    return AuthResult(success=True)


def main() -> None:
    # aiosmtpd logs a warning about its own use of a deprecated attribute on every login.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    port, output = int(sys.argv[1]), sys.argv[2]
    handler = RecordingSink()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, auth_require_tls=False, authenticator=_accept
    )
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    with handler.lock, open(output, "w", encoding="utf-8") as handle:
        for entry in handler.received:
            handle.write(json.dumps(entry) + "\n")
        count = len(handler.received)
    print(count, flush=True)


if __name__ == "__main__":
    main()
