"""A stand-in for the Microsoft Graph mail endpoints mailramp uses, on loopback (real HTTP):

    POST /v1.0/me/sendMail                              MIME form (base64, text/plain) → 202
    GET  /v1.0/me/mailFolders/SentItems/messages        $filter=internetMessageId eq '…'
    GET  /v1.0/me/mailFolders/Inbox/messages            $filter=receivedDateTime ge … [and
                                                        receivedDateTime lt …], $orderby,
                                                        $top, paged by @odata.nextLink ($skip)
    GET  /v1.0/me/messages/{id}/$value                  the raw MIME

Bodies and errors follow Graph's documentation: `{"error": {"code", "message"}}`, 401
InvalidAuthenticationToken for a bearer token it does not know, and injectable 429/503
with Retry-After or a connection dropped after the request arrived. It records every
request's arrival time and the most requests it ever served at once.
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
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid, parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.support.postgres import free_port

PREFIX = "/v1.0"


@dataclass
class Seen:
    """One request as it arrived."""

    method: str
    path: str
    query: dict[str, str]
    at: float  # time.monotonic()
    token: str | None


@dataclass
class Fault:
    """An answer given instead of the real one to the next `count` matching requests."""

    path_contains: str
    status: int = 429
    retry_after: int | None = None
    drop: bool = False  # read the request, then close without answering
    count: int = 1


@dataclass
class StoredMessage:
    id: str
    raw: bytes
    received_at: datetime
    headers_available: bool = True
    internet_message_id: str = ""
    parsed: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.parsed = parsed
        if not self.internet_message_id:
            self.internet_message_id = str(parsed.get("Message-ID", "")).strip()

    def resource(self, select: set[str]) -> dict[str, Any]:
        name, address = parseaddr(str(self.parsed.get("From", "")))
        headers = (
            [{"name": key, "value": str(value)} for key, value in self.parsed.items()]
            if self.headers_available
            else None
        )
        full: dict[str, Any] = {
            "@odata.etag": f'W/"{self.id}"',
            "id": self.id,
            "receivedDateTime": self.received_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "subject": str(self.parsed.get("Subject", "")),
            "internetMessageId": self.internet_message_id,
            "internetMessageHeaders": headers,
            "from": {"emailAddress": {"name": name, "address": address}},
        }
        # Graph returns internetMessageHeaders only when $select names it.
        keep = (select or set(full) - {"internetMessageHeaders"}) | {"@odata.etag", "id"}
        return {key: value for key, value in full.items() if key in keep}


class GraphServer:
    """One mailbox behind a Graph-like API; start(), then point base_url at `url`."""

    def __init__(
        self,
        *,
        tokens: set[str] | None = None,
        page_size: int = 10,
        accepts: Callable[[str], bool] | None = None,
        profile: dict[str, Any] | None = None,
    ) -> None:
        self.port = free_port()
        self.tokens = set(tokens or {"token-1"})
        # Tokens another stand-in issued (the Microsoft identity stand-in's access tokens),
        # and the `/me` profile to answer: for flows that link a mailbox, then use Graph.
        self.accepts = accepts
        self.profile = profile
        self.page_size = page_size
        self.delay_seconds = 0.0
        self.sent: list[EmailMessage] = []
        self.sent_items: list[StoredMessage] = []
        self.inbox: list[StoredMessage] = []
        self.rejected_recipients: set[str] = set()
        self.requests: list[Seen] = []
        self.faults: list[Fault] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
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
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    def start(self) -> GraphServer:
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
        retry_after: int | None = None,
        drop: bool = False,
        count: int = 1,
    ) -> None:
        """Answer the next `count` requests whose path contains `path_contains` with
        `status` (and Retry-After), or drop their connections."""
        with self._lock:
            self.faults.append(Fault(path_contains, status, retry_after, drop, count))

    def deliver(
        self, raw: bytes, *, received_at: datetime, headers_available: bool = True
    ) -> StoredMessage:
        """Put a message in the Inbox; without headers like a report Exchange made itself."""
        stored = StoredMessage(self._new_id(), raw, received_at.astimezone(UTC), headers_available)
        with self._lock:
            self.inbox.append(stored)
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
        return f"AAMkAG{next(self._ids):08d}="

    # The request side, run on the server's threads.

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
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
                code = "ApplicationThrottled" if fault.status == 429 else "ServiceUnavailable"
                headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
                self._error(handler, fault.status, code, "Please retry later.", headers)
                return
            if token not in self.tokens and not (
                token is not None and self.accepts is not None and self.accepts(token)
            ):
                self._error(
                    handler,
                    401,
                    "InvalidAuthenticationToken",
                    "Access token has expired or is not yet valid.",
                    {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
                )
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
        query: dict[str, str],
        body: bytes,
    ) -> None:
        if method == "GET" and path == "/me" and self.profile is not None:
            self._json(handler, self.profile)
        elif method == "POST" and path == "/me/sendMail":
            self._send_mail(handler, body)
        elif method == "GET" and path == "/me/mailFolders/SentItems/messages":
            self._sent_items(handler, query)
        elif method == "GET" and path == "/me/mailFolders/Inbox/messages":
            self._inbox(handler, query)
        elif method == "GET" and (found := re.fullmatch(r"/me/messages/([^/]+)/\$value", path)):
            self._value(handler, found.group(1))
        else:
            self._error(handler, 400, "BadRequest", f"Resource not found for the segment {path}")

    def _send_mail(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if handler.headers.get("Content-Type", "").split(";")[0].strip() != "text/plain":
            self._error(handler, 400, "ErrorInvalidRequest", "Expected a JSON message body.")
            return
        try:
            raw = base64.b64decode(body, validate=True)
        except binascii.Error:
            self._error(
                handler,
                400,
                "ErrorMimeContentInvalidBase64String",
                "Invalid base64 string for MIME content.",
            )
            return
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        recipients = [
            address.lower()
            for _, address in getaddresses(
                [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
            )
        ]
        if not recipients:
            self._error(
                handler, 400, "ErrorInvalidRecipients", "At least one recipient is not valid."
            )
            return
        refused = [r for r in recipients if r in self.rejected_recipients]
        if refused:
            self._error(
                handler,
                400,
                "ErrorInvalidRecipients",
                f"At least one recipient isn't valid., Recipient '{refused[0]}' isn't resolved.",
            )
            return
        internet_id = str(message.get("Message-ID", "")).strip() or make_msgid("exchange")
        with self._lock:
            self.sent.append(message)
            self.sent_items.append(
                StoredMessage(
                    self._new_id(), raw, datetime.now(UTC), internet_message_id=internet_id
                )
            )
        handler.send_response(202)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _sent_items(self, handler: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        found = re.fullmatch(r"internetMessageId eq '((?:[^']|'')*)'", query.get("$filter", ""))
        if found is None:
            self._error(handler, 400, "ErrorInvalidUrlQueryFilter", "Invalid filter clause")
            return
        wanted = found.group(1).replace("''", "'")
        select = _select(query)
        with self._lock:
            matches = [
                m.resource(select) for m in self.sent_items if m.internet_message_id == wanted
            ]
        self._json(handler, {"@odata.context": self._context("SentItems"), "value": matches})

    def _inbox(self, handler: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        text = query.get("$filter", "")
        since = re.search(r"receivedDateTime ge (\S+)", text)
        until = re.search(r"receivedDateTime lt (\S+)", text)
        try:
            since_at = _parse(since.group(1)) if since else None
            until_at = _parse(until.group(1)) if until else None
        except ValueError:
            self._error(handler, 400, "ErrorInvalidUrlQueryFilter", "Invalid filter clause")
            return
        with self._lock:
            matching = [
                m
                for m in self.inbox
                if (since_at is None or m.received_at >= since_at)
                and (until_at is None or m.received_at < until_at)
            ]
        if query.get("$orderby", "").split(" ")[0] == "receivedDateTime":
            matching.sort(key=lambda m: m.received_at)
            if query["$orderby"].endswith(" desc"):
                matching.reverse()
        top = min(int(query.get("$top", self.page_size)), self.page_size)
        skip = int(query.get("$skip", 0))
        page = matching[skip : skip + top]
        select = _select(query)
        document: dict[str, Any] = {
            "@odata.context": self._context("Inbox"),
            "value": [m.resource(select) for m in page],
        }
        if skip + top < len(matching):
            following = {**query, "$skip": str(skip + top)}
            document["@odata.nextLink"] = (
                f"{self.url}/me/mailFolders/Inbox/messages?{urlencode(following)}"
            )
        self._json(handler, document)

    def _value(self, handler: BaseHTTPRequestHandler, message_id: str) -> None:
        with self._lock:
            stored = next((m for m in self.inbox + self.sent_items if m.id == message_id), None)
        if stored is None:
            self._error(
                handler,
                404,
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            )
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(stored.raw)))
        handler.end_headers()
        handler.wfile.write(stored.raw)

    def _context(self, folder: str) -> str:
        return f"{self.url}/$metadata#users('me')/mailFolders('{folder}')/messages"

    def _json(self, handler: BaseHTTPRequestHandler, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json; odata.metadata=minimal")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _error(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        code: str,
        message: str,
        headers: dict[str, Any] | None = None,
    ) -> None:
        data = json.dumps(
            {
                "error": {
                    "code": code,
                    "message": message,
                    "innerError": {
                        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                        "request-id": f"{next(self._ids):08d}-0000-0000-0000-000000000000",
                    },
                }
            }
        ).encode()
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, str(value))
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def _select(query: dict[str, str]) -> set[str]:
    return {name.strip() for name in query.get("$select", "").split(",") if name.strip()}


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
