"""What the Graph and Gmail stand-ins share: a mailbox API on loopback (real HTTP) that
checks bearer tokens, records every request's arrival, counts the most requests it ever
served at once, and answers injected faults (an error status, with or without
Retry-After, or a connection dropped after the request arrived) instead of the real answer.

A subclass names its path prefix, routes the requests, and phrases its errors.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from tests.support.postgres import free_port


@dataclass
class Seen:
    """One request as it arrived."""

    method: str
    path: str
    query: dict[str, Any]  # as the stand-in reads it: Gmail keeps every value, Graph the first
    at: float  # time.monotonic()
    token: str | None


@dataclass
class Fault:
    """An answer given instead of the real one to the next `count` matching requests."""

    path_contains: str
    status: int = 429
    reason: str | None = None  # the error's code (Graph) or reason (Gmail); None: by status
    message: str | None = None  # the error's message; None: the API's usual one
    retry_after: int | None = None
    drop: bool = False  # read the request, then close without answering
    count: int = 1


@dataclass
class StoredMessage:
    """A message in the mailbox: its id and raw bytes, parsed."""

    id: str
    raw: bytes
    parsed: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        self.parsed = parse(self.raw)


class ApiStandIn:
    """One mailbox behind an API on loopback; start(), then point base_url at `url`."""

    prefix: ClassVar[str]  # the paths the API serves start with it
    url_path: ClassVar[str] = ""  # what of the prefix the client's base URL holds
    send_path: ClassVar[str]  # what a send's path contains
    json_type: ClassVar[str]  # the Content-Type of its JSON answers
    first_id: ClassVar[int] = 1  # where its message ids start counting

    def __init__(self, *, tokens: set[str] | None, accepts: Callable[[str], bool] | None) -> None:
        self.port = free_port()
        self.tokens = set(tokens or {"token-1"})
        # Tokens another stand-in issued (the identity stand-in's access tokens): for flows
        # that link a mailbox, then use the API.
        self.accepts = accepts
        self.delay_seconds = 0.0
        self.sent: list[EmailMessage] = []
        self.refused_recipients: set[str] = set()
        self.writable = True  # False: the token's grant may read but not change messages
        # Called with each message sent (its raw bytes): to deliver it into another stand-in.
        self.relay: Callable[[bytes], None] | None = None
        self.requests: list[Seen] = []
        self.faults: list[Fault] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(self.first_id)
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                stand_in._handle(self, "GET")

            def do_POST(self) -> None:
                stand_in._handle(self, "POST")

            def do_PATCH(self) -> None:
                stand_in._handle(self, "PATCH")

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.url_path}"

    def start(self) -> ApiStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(
        self,
        path_contains: str,
        status: int = 429,
        *,
        reason: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
        drop: bool = False,
        count: int = 1,
    ) -> None:
        """Answer the next `count` requests whose path contains `path_contains` with
        `status` (the error's `reason` and `message`, and Retry-After), or drop their
        connections."""
        fault = Fault(path_contains, status, reason, message, retry_after, drop, count)
        with self._lock:
            self.faults.append(fault)

    def seen(self, path_contains: str, method: str | None = None) -> list[Seen]:
        """The requests that arrived for a path, in order."""
        with self._lock:
            return [
                r
                for r in self.requests
                if path_contains in r.path and (method is None or r.method == method)
            ]

    def _new_id(self) -> str:
        return self.format_id(next(self._ids))

    # What each API does its own way.

    def set_account(self, address: str) -> None:
        """The account the tokens open, as the API's profile endpoint names it."""
        raise NotImplementedError

    def deliver(self, raw: bytes, *, received_at: datetime) -> StoredMessage:
        """Put a message in the inbox, received at `received_at`."""
        raise NotImplementedError

    def format_id(self, number: int) -> str:
        raise NotImplementedError

    def read_query(self, query: dict[str, list[str]]) -> dict[str, Any]:
        return query

    def answer_fault(self, handler: BaseHTTPRequestHandler, fault: Fault) -> None:
        raise NotImplementedError

    def refuse_token(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def route(
        self,
        handler: BaseHTTPRequestHandler,
        method: str,
        path: str,
        query: dict[str, Any],
        body: bytes,
    ) -> None:
        raise NotImplementedError

    # The request side, run on the server's threads.

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = self.read_query(parse_qs(parts.query))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        auth = handler.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        with self._lock:
            self.requests.append(Seen(method, parts.path, query, time.monotonic(), token))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = next((f for f in self.faults if f.path_contains in parts.path), None)
            if fault is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
        try:
            if self.delay_seconds:
                time.sleep(self.delay_seconds)
            if fault is not None and fault.drop:
                handler.close_connection = True
            elif fault is not None:
                self.answer_fault(handler, fault)
            elif token not in self.tokens and not (
                token is not None and self.accepts is not None and self.accepts(token)
            ):
                self.refuse_token(handler)
            else:
                path = parts.path.removeprefix(self.prefix)
                self.route(handler, method, path, query, body)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _json(self, handler: BaseHTTPRequestHandler, document: dict[str, Any]) -> None:
        self._answer(handler, 200, document)

    def _answer(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        document: dict[str, Any],
        headers: dict[str, Any] | None = None,
        *,
        content_type: str | None = None,
    ) -> None:
        data = json.dumps(document).encode()
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, str(value))
        handler.send_header("Content-Type", content_type or self.json_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def parse(raw: bytes) -> EmailMessage:
    """A message as the modern email API reads it."""
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def recipients(message: EmailMessage) -> list[str]:
    """The To, Cc and Bcc addresses the APIs deliver to, lowercased."""
    return [
        address.lower()
        for _, address in getaddresses(
            [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
        )
    ]
