"""A stand-in for the Gmail API endpoints mailramp uses, on loopback (real HTTP):

    POST /gmail/v1/users/me/messages/send       {"raw": base64url message} → 200 {id, threadId,
                                                labelIds}
    GET  /gmail/v1/users/me/messages            q (in:inbox, in:sent, after:, before:,
                                                newer_than:Nd, from:), maxResults, pageToken
                                                → {messages: [{id, threadId}], nextPageToken,
                                                resultSizeEstimate}, newest first
    GET  /gmail/v1/users/me/messages/{id}       format=metadata (with metadataHeaders), raw,
                                                minimal

Bodies and errors follow Gmail's documentation: `{"error": {"code", "message", "errors":
[{"domain", "reason", "message"}], "status"}}`, 401 authError for a bearer token it does
not know, and injectable 429 / 403 rateLimitExceeded (with or without Retry-After), other
statuses, or a connection dropped after the request arrived. When `rewrite_message_ids` is
set, send replaces the message's Message-ID with one of its own, as Gmail does with ids it
does not accept. It records every request's arrival time and the most requests it ever
served at once.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.postgres import free_port

PREFIX = "/gmail/v1/users/me"
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class Seen:
    """One request as it arrived."""

    method: str
    path: str
    query: dict[str, list[str]]
    at: float  # time.monotonic()
    token: str | None


@dataclass
class Fault:
    """An answer given instead of the real one to the next `count` matching requests."""

    path_contains: str
    status: int = 429
    reason: str = "rateLimitExceeded"
    retry_after: int | None = None
    drop: bool = False  # read the request, then close without answering
    count: int = 1


@dataclass
class StoredMessage:
    id: str
    raw: bytes
    internal_date: datetime
    labels: list[str]
    parsed: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.parsed = parsed

    @property
    def internal_ms(self) -> int:
        return int(self.internal_date.timestamp() * 1000)

    def resource(self, fmt: str, wanted: list[str]) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": self.id,
            "threadId": self.id,
            "labelIds": self.labels,
            "snippet": "",
            "historyId": "1000",
            "internalDate": str(self.internal_ms),
            "sizeEstimate": len(self.raw),
        }
        if fmt == "raw":
            base["raw"] = base64.urlsafe_b64encode(self.raw).decode()
        elif fmt in ("metadata", "full"):
            lowered = {name.lower() for name in wanted}
            headers = [
                {"name": key, "value": str(value)}
                for key, value in self.parsed.items()
                if fmt == "full" or not lowered or key.lower() in lowered
            ]
            base["payload"] = {
                "partId": "",
                "mimeType": self.parsed.get_content_type(),
                "filename": "",
                "headers": headers,
            }
        return base


class GmailServer:
    """One mailbox behind a Gmail-like API; start(), then point base_url at `url`."""

    def __init__(
        self,
        *,
        tokens: set[str] | None = None,
        page_size: int = 100,
        accepts: Callable[[str], bool] | None = None,
    ) -> None:
        self.port = free_port()
        self.tokens = set(tokens or {"token-1"})
        # Tokens another stand-in issued (the Google OAuth stand-in's access tokens): for
        # flows that link a mailbox, then use the Gmail API.
        self.accepts = accepts
        self.page_size = page_size
        self.delay_seconds = 0.0
        self.rewrite_message_ids = False
        self.sent: list[EmailMessage] = []
        self.messages: list[StoredMessage] = []
        self.invalid_recipients: set[str] = set()
        self.requests: list[Seen] = []
        self.faults: list[Fault] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(0x18C0000000)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GmailServer:
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
        reason: str = "rateLimitExceeded",
        retry_after: int | None = None,
        drop: bool = False,
        count: int = 1,
    ) -> None:
        """Answer the next `count` requests whose path contains `path_contains` with
        `status` and error `reason` (and Retry-After), or drop their connections."""
        with self._lock:
            self.faults.append(Fault(path_contains, status, reason, retry_after, drop, count))

    def deliver(self, raw: bytes, *, received_at: datetime) -> StoredMessage:
        """Put a message in the INBOX, received at `received_at`."""
        stored = StoredMessage(self._new_id(), raw, received_at.astimezone(UTC), ["INBOX"])
        with self._lock:
            self.messages.append(stored)
        return stored

    def seen(self, path_contains: str, method: str | None = None) -> list[Seen]:
        """The requests that arrived for a path, in order."""
        with self._lock:
            return [
                r
                for r in self.requests
                if path_contains in r.path and (method is None or r.method == method)
            ]

    def _new_id(self) -> str:
        return f"{next(self._ids):016x}"

    # The request side, run on the server's threads.

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
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
                return
            if fault is not None:
                headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
                domain = "usageLimits" if "RateLimit" in fault.reason else "global"
                self._error(
                    handler,
                    fault.status,
                    fault.reason,
                    _FAULT_TEXT.get(fault.reason, "Error"),
                    headers,
                    domain=domain,
                )
                return
            if token not in self.tokens and not (
                token is not None and self.accepts is not None and self.accepts(token)
            ):
                self._error(
                    handler,
                    401,
                    "authError",
                    "Invalid Credentials",
                    {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
                    location="Authorization",
                )
                return
            if not parts.path.startswith(PREFIX):
                self._error(handler, 404, "notFound", "Not Found")
                return
            self._route(handler, method, parts.path.removeprefix(PREFIX), query, body)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _route(
        self,
        handler: BaseHTTPRequestHandler,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
    ) -> None:
        if method == "POST" and path == "/messages/send":
            self._send(handler, body)
        elif method == "GET" and path == "/messages":
            self._list(handler, query)
        elif method == "GET" and (found := re.fullmatch(r"/messages/([0-9a-f]+)", path)):
            self._get(handler, found.group(1), query)
        else:
            self._error(handler, 404, "notFound", "Requested entity was not found.")

    def _send(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        try:
            document = json.loads(body)
            raw_text = document["raw"]
            assert isinstance(raw_text, str)
            raw = base64.urlsafe_b64decode(raw_text + "=" * (-len(raw_text) % 4))
        except (ValueError, KeyError, TypeError, AssertionError, binascii.Error):
            self._error(
                handler,
                400,
                "invalidArgument",
                "'raw' RFC822 payload message string"
                " or uploading message via /upload/* URL required",
            )
            return
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        recipients = [
            address.lower()
            for _, address in getaddresses(
                [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
            )
            if address
        ]
        if not recipients:
            self._error(handler, 400, "invalidArgument", "Recipient address required")
            return
        if any(r in self.invalid_recipients or "@" not in r for r in recipients):
            self._error(handler, 400, "invalidArgument", "Invalid To header")
            return
        if self.rewrite_message_ids or not message.get("Message-ID"):
            del message["Message-ID"]
            message["Message-ID"] = f"<CA+{self._new_id()}@mail.gmail.com>"
            raw = message.as_bytes()
        stored = StoredMessage(self._new_id(), raw, datetime.now(UTC), ["SENT"])
        with self._lock:
            self.sent.append(message)
            self.messages.append(stored)
        self._json(handler, {"id": stored.id, "threadId": stored.id, "labelIds": ["SENT"]})

    def _list(self, handler: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
        try:
            matches = _matcher(query.get("q", [""])[0])
        except ValueError as error:
            self._error(handler, 400, "invalidArgument", f"Invalid query: {error}")
            return
        with self._lock:
            found = sorted(
                (m for m in self.messages if matches(m)), key=lambda m: m.internal_ms, reverse=True
            )
        size = min(int(query.get("maxResults", ["100"])[0]), self.page_size, 500)
        start = int(query.get("pageToken", ["0"])[0] or 0)
        page = found[start : start + size]
        document: dict[str, Any] = {"resultSizeEstimate": len(page)}
        if page:
            document["messages"] = [{"id": m.id, "threadId": m.id} for m in page]
        if start + size < len(found):
            document["nextPageToken"] = f"{start + size:020d}"
        self._json(handler, document)

    def _get(
        self, handler: BaseHTTPRequestHandler, message_id: str, query: dict[str, list[str]]
    ) -> None:
        with self._lock:
            stored = next((m for m in self.messages if m.id == message_id), None)
        if stored is None:
            self._error(handler, 404, "notFound", "Requested entity was not found.")
            return
        fmt = query.get("format", ["full"])[0].lower()
        if fmt not in ("full", "metadata", "minimal", "raw"):
            self._error(handler, 400, "invalidArgument", f"Invalid value for format: {fmt}")
            return
        self._json(handler, stored.resource(fmt, query.get("metadataHeaders", [])))

    def _json(self, handler: BaseHTTPRequestHandler, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _error(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        reason: str,
        message: str,
        headers: dict[str, Any] | None = None,
        *,
        domain: str = "global",
        location: str | None = None,
    ) -> None:
        detail: dict[str, Any] = {"domain": domain, "reason": reason, "message": message}
        if location:
            detail |= {"location": location, "locationType": "header"}
        data = json.dumps(
            {
                "error": {
                    "code": status,
                    "message": message,
                    "errors": [detail],
                    "status": STATUS_NAMES.get(status, "UNKNOWN"),
                }
            }
        ).encode()
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, str(value))
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


_FAULT_TEXT = {
    "rateLimitExceeded": "Rate Limit Exceeded",
    "userRateLimitExceeded": "User Rate Limit Exceeded",
    "insufficientPermissions": "Insufficient Permission",
    "backendError": "Backend Error",
}


def _matcher(q: str) -> Callable[[StoredMessage], bool]:
    """A predicate for the search operators the stand-in knows; others are ValueError."""
    labels: list[str] = []
    after: list[datetime] = []
    before: list[datetime] = []
    senders: list[str] = []
    for term in q.split():
        name, _, value = term.partition(":")
        name = name.lower()
        if name == "in" and value.lower() in ("inbox", "sent"):
            labels.append(value.upper())
        elif name in ("after", "before"):
            (after if name == "after" else before).append(_search_time(value))
        elif name == "newer_than" and (found := re.fullmatch(r"(\d+)([dmy])", value)):
            days = int(found.group(1)) * {"d": 1, "m": 30, "y": 365}[found.group(2)]
            after.append(datetime.now(UTC) - timedelta(days=days))
        elif name == "from" and value:
            senders.append(value.lower())
        else:
            raise ValueError(term)

    def matches(message: StoredMessage) -> bool:
        sender = str(message.parsed.get("From", "")).lower()
        return (
            all(label in message.labels for label in labels)
            and all(message.internal_date > moment for moment in after)
            and all(message.internal_date < moment for moment in before)
            and all(wanted in sender for wanted in senders)
        )

    return matches


def _search_time(value: str) -> datetime:
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    return datetime.strptime(value, "%Y/%m/%d").replace(tzinfo=UTC)
