"""A stand-in for the Gmail API endpoints mailramp uses, on loopback (real HTTP):

    POST /gmail/v1/users/me/messages/send       {"raw": base64url message} → 200 {id, threadId,
                                                labelIds}
    GET  /gmail/v1/users/me/messages            q (in:inbox, in:sent, after:, before:,
                                                newer_than:Nd, from:, rfc822msgid:),
                                                includeSpamTrash, maxResults, pageToken
                                                → {messages: [{id, threadId}], nextPageToken,
                                                resultSizeEstimate}, newest first
    GET  /gmail/v1/users/me/messages/{id}       format=metadata (with metadataHeaders), raw,
                                                minimal
    POST /gmail/v1/users/me/messages/{id}/modify  {addLabelIds, removeLabelIds}

As in Gmail, messages labelled SPAM or TRASH are listed only with includeSpamTrash=true,
and with `writable` False (a gmail.readonly grant) modify answers 403
insufficientPermissions.

Bodies and errors follow Gmail's documentation: `{"error": {"code", "message", "errors":
[{"domain", "reason", "message"}], "status"}}`, 401 authError for a bearer token it does
not know, and injectable 429 / 403 rateLimitExceeded (with or without Retry-After), other
statuses, or a connection dropped after the request arrived (see api_stand_in). A daily
sending limit (`limit_sending`) answers every send before the time it lifts, by `clock`,
with 429 "User-rate limit exceeded.  Retry after <time> (Mail sending)", as Gmail does.
When `rewrite_message_ids` is set, send replaces the message's Message-ID with one of its
own, as Gmail does with ids it does not accept.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.api_stand_in import ApiStandIn, Fault, StoredMessage, parse, recipients

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
class GmailMessage(StoredMessage):
    internal_date: datetime
    labels: list[str]

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


class GmailServer(ApiStandIn):
    """One mailbox behind a Gmail-like API; start(), then point base_url at `url`."""

    prefix = PREFIX
    send_path = "/messages/send"
    json_type = "application/json; charset=UTF-8"
    first_id = 0x18C0000000

    def __init__(
        self,
        *,
        tokens: set[str] | None = None,
        page_size: int = 100,
        accepts: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(tokens=tokens, accepts=accepts)
        self.page_size = page_size
        self.rewrite_message_ids = False
        self.messages: list[GmailMessage] = []
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.sending_limited_until: datetime | None = None
        self.sending_limit_status = 429
        self.address: str | None = None  # users.getProfile's emailAddress, when set
        self.garble_send_answers = 0  # how many sends get a 200 whose body is not JSON

    def limit_sending(self, *, until: datetime, status: int = 429) -> None:
        """Refuse every send before `until` (by `clock`) as over the daily sending limit."""
        self.sending_limited_until = until
        self.sending_limit_status = status

    def set_account(self, address: str) -> None:
        self.address = address

    def deliver(
        self, raw: bytes, *, received_at: datetime, labels: tuple[str, ...] = ("INBOX", "UNREAD")
    ) -> GmailMessage:
        """Put a message under `labels` (the INBOX, unread, by default), received at
        `received_at`."""
        stored = GmailMessage(self._new_id(), raw, received_at.astimezone(UTC), list(labels))
        with self._lock:
            self.messages.append(stored)
        return stored

    def format_id(self, number: int) -> str:
        return f"{number:016x}"

    def answer_fault(self, handler: BaseHTTPRequestHandler, fault: Fault) -> None:
        reason = fault.reason or _FAULT_REASON.get(fault.status, "rateLimitExceeded")
        self._error(
            handler,
            fault.status,
            reason,
            fault.message or _FAULT_TEXT.get(reason, "Error"),
            {} if fault.retry_after is None else {"Retry-After": fault.retry_after},
            domain="usageLimits" if "RateLimit" in reason else "global",
        )

    def refuse_token(self, handler: BaseHTTPRequestHandler) -> None:
        self._error(
            handler,
            401,
            "authError",
            "Invalid Credentials",
            {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            location="Authorization",
        )

    def route(
        self,
        handler: BaseHTTPRequestHandler,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
    ) -> None:
        if method == "POST" and path == "/messages/send":
            self._send(handler, body)
        elif method == "GET" and path == "/profile" and self.address is not None:
            total = len(self.messages)
            profile = {"emailAddress": self.address, "messagesTotal": total, "historyId": "1"}
            self._json(handler, profile | {"threadsTotal": total})
        elif method == "GET" and path == "/messages":
            self._list(handler, query)
        elif method == "GET" and (found := re.fullmatch(r"/messages/([0-9a-f]+)", path)):
            self._get(handler, found.group(1), query)
        elif method == "POST" and (found := re.fullmatch(r"/messages/([0-9a-f]+)/modify", path)):
            self._modify(handler, found.group(1), body)
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
        message = parse(raw)
        addressed = [address for address in recipients(message) if address]
        if not addressed:
            self._error(handler, 400, "invalidArgument", "Recipient address required")
            return
        if any(r in self.refused_recipients or "@" not in r for r in addressed):
            self._error(handler, 400, "invalidArgument", "Invalid To header")
            return
        limited_until = self.sending_limited_until
        if limited_until is not None and self.clock() < limited_until:
            stamp = limited_until.astimezone(UTC).isoformat(timespec="milliseconds")
            self._error(
                handler,
                self.sending_limit_status,
                "rateLimitExceeded",
                f"User-rate limit exceeded.  Retry after {stamp.replace('+00:00', 'Z')}"
                " (Mail sending)",
                domain="usageLimits",
            )
            return
        if self.rewrite_message_ids or not message.get("Message-ID"):
            del message["Message-ID"]
            message["Message-ID"] = f"<CA+{self._new_id()}@mail.gmail.com>"
            raw = message.as_bytes()
        stored = GmailMessage(self._new_id(), raw, datetime.now(UTC), ["SENT"])
        with self._lock:
            self.sent.append(message)
            self.messages.append(stored)
        if self.relay is not None:
            self.relay(raw)
        if self.garble_send_answers:  # a proxy in between mangled the 200's body
            self.garble_send_answers -= 1
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html")
            handler.send_header("Content-Length", "15")
            handler.end_headers()
            handler.wfile.write(b"<html>OK</html>")
            return
        self._json(handler, {"id": stored.id, "threadId": stored.id, "labelIds": ["SENT"]})

    def _list(self, handler: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
        try:
            matches = _matcher(query.get("q", [""])[0])
        except ValueError as error:
            self._error(handler, 400, "invalidArgument", f"Invalid query: {error}")
            return
        everywhere = query.get("includeSpamTrash", ["false"])[0].lower() == "true"
        with self._lock:
            found = sorted(
                (
                    m
                    for m in self.messages
                    if matches(m) and (everywhere or not {"SPAM", "TRASH"} & set(m.labels))
                ),
                key=lambda m: m.internal_ms,
                reverse=True,
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

    def _modify(self, handler: BaseHTTPRequestHandler, message_id: str, body: bytes) -> None:
        if not self.writable:
            self._error(handler, 403, "insufficientPermissions", "Insufficient Permission")
            return
        with self._lock:
            stored = next((m for m in self.messages if m.id == message_id), None)
        if stored is None:
            self._error(handler, 404, "notFound", "Requested entity was not found.")
            return
        document = json.loads(body)
        with self._lock:
            removed = set(document.get("removeLabelIds", []))
            kept = [label for label in stored.labels if label not in removed]
            added = [label for label in document.get("addLabelIds", []) if label not in kept]
            stored.labels = kept + added
        self._json(handler, stored.resource("minimal", []))

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
        error = {
            "code": status,
            "message": message,
            "errors": [detail],
            "status": STATUS_NAMES.get(status, "UNKNOWN"),
        }
        self._answer(handler, status, {"error": error}, headers)


_FAULT_REASON = {500: "backendError", 503: "backendError"}
_FAULT_TEXT = {
    "rateLimitExceeded": "Rate Limit Exceeded",
    "userRateLimitExceeded": "User Rate Limit Exceeded",
    "insufficientPermissions": "Insufficient Permission",
    "backendError": "Backend Error",
}


def _matcher(q: str) -> Callable[[GmailMessage], bool]:
    """A predicate for the search operators the stand-in knows; others are ValueError."""
    labels: list[str] = []
    after: list[datetime] = []
    before: list[datetime] = []
    senders: list[str] = []
    message_ids: list[str] = []
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
        elif name == "rfc822msgid" and value:
            message_ids.append(value.strip("<>"))
        else:
            raise ValueError(term)

    def matches(message: GmailMessage) -> bool:
        sender = str(message.parsed.get("From", "")).lower()
        return (
            all(label in message.labels for label in labels)
            and all(message.internal_date > moment for moment in after)
            and all(message.internal_date < moment for moment in before)
            and all(wanted in sender for wanted in senders)
            and all(
                str(message.parsed.get("Message-ID", "")).strip().strip("<>") == wanted
                for wanted in message_ids
            )
        )

    return matches


def _search_time(value: str) -> datetime:
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    return datetime.strptime(value, "%Y/%m/%d").replace(tzinfo=UTC)
