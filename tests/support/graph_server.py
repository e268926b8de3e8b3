"""A stand-in for the Microsoft Graph mail endpoints mailramp uses, on loopback (real HTTP):

    POST /v1.0/me/sendMail                              MIME form (base64, text/plain) → 202
    GET  /v1.0/me/mailFolders/SentItems/messages        $filter=internetMessageId eq '…'
    GET  /v1.0/me/mailFolders/Inbox/messages            $filter=receivedDateTime ge … [and
                                                        receivedDateTime lt …], $orderby,
                                                        $top, paged by @odata.nextLink ($skip)
    GET  /v1.0/me/messages/{id}/$value                  the raw MIME
    GET  /v1.0/me/messages                              $filter=internetMessageId eq '…',
                                                        every folder
    GET  /v1.0/me/mailFolders/{id or well-known name}   {id, displayName}
    PATCH /v1.0/me/messages/{id}                        isRead, flag, inferenceClassification
    POST /v1.0/me/messages/{id}/move                    {destinationId} → 201, a new id

Received messages sit in folders (`deliver(..., folder="junkemail")`); the folders have
opaque ids, and the well-known names `inbox`, `junkemail`, `archive`, `deleteditems` stand
for them as in Graph. With `writable` False (a Mail.Read grant) changes answer 403.

Bodies and errors follow Graph's documentation: `{"error": {"code", "message"}}`, 401
InvalidAuthenticationToken for a bearer token it does not know, and injectable 429/503
with Retry-After or a connection dropped after the request arrived (see api_stand_in).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import make_msgid, parseaddr
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlencode

from tests.support.api_stand_in import ApiStandIn, Fault, StoredMessage, parse, recipients

PREFIX = "/v1.0"


FOLDERS = {
    "inbox": "Inbox",
    "junkemail": "Junk Email",
    "archive": "Archive",
    "deleteditems": "Deleted Items",
}


def folder_id(well_known: str) -> str:
    """The opaque id the stand-in gives a well-known folder."""
    return "AQMkAD" + base64.urlsafe_b64encode(well_known.encode()).decode().rstrip("=")


@dataclass
class GraphMessage(StoredMessage):
    received_at: datetime
    headers_available: bool = True
    internet_message_id: str = ""
    folder: str = "inbox"  # a well-known name
    is_read: bool = False
    flag_status: str = "notFlagged"
    inference_classification: str = "other"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.internet_message_id:
            self.internet_message_id = str(self.parsed.get("Message-ID", "")).strip()

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
            "parentFolderId": folder_id(self.folder),
            "isRead": self.is_read,
            "isDraft": False,
            "flag": {"flagStatus": self.flag_status},
            "inferenceClassification": self.inference_classification,
        }
        # Graph returns internetMessageHeaders only when $select names it.
        keep = (select or set(full) - {"internetMessageHeaders"}) | {"@odata.etag", "id"}
        return {key: value for key, value in full.items() if key in keep}


class GraphServer(ApiStandIn):
    """One mailbox behind a Graph-like API; start(), then point base_url at `url`."""

    prefix = PREFIX
    url_path = PREFIX
    send_path = "/me/sendMail"
    json_type = "application/json; odata.metadata=minimal"

    def __init__(
        self,
        *,
        tokens: set[str] | None = None,
        page_size: int = 10,
        accepts: Callable[[str], bool] | None = None,
        profile: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(tokens=tokens, accepts=accepts)
        self.profile = profile  # the `/me` profile to answer, for flows that link a mailbox
        self.page_size = page_size
        self.sent_items: list[GraphMessage] = []
        self.inbox: list[GraphMessage] = []

    def set_account(self, address: str) -> None:
        self.profile = {"mail": address, "userPrincipalName": address, "displayName": "Ann"}

    def deliver(
        self,
        raw: bytes,
        *,
        received_at: datetime,
        headers_available: bool = True,
        folder: str = "inbox",
    ) -> GraphMessage:
        """Put a message in a folder (the Inbox by default; a well-known name); without
        headers like a report Exchange made itself."""
        stored = GraphMessage(
            self._new_id(), raw, received_at.astimezone(UTC), headers_available, folder=folder
        )
        with self._lock:
            self.inbox.append(stored)
        return stored

    def format_id(self, number: int) -> str:
        return f"AAMkAG{number:08d}="

    def read_query(self, query: dict[str, list[str]]) -> dict[str, Any]:
        return {key: values[0] for key, values in query.items()}

    def answer_fault(self, handler: BaseHTTPRequestHandler, fault: Fault) -> None:
        code = fault.reason or (
            "ApplicationThrottled" if fault.status == 429 else "ServiceUnavailable"
        )
        headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
        self._error(handler, fault.status, code, fault.message or "Please retry later.", headers)

    def refuse_token(self, handler: BaseHTTPRequestHandler) -> None:
        self._error(
            handler,
            401,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
            {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
        )

    def route(
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
        elif method == "GET" and path == "/me/messages":
            self._find(handler, query)
        elif method == "GET" and (found := re.fullmatch(r"/me/mailFolders/([^/]+)", path)):
            self._folder(handler, found.group(1))
        elif method == "PATCH" and (found := re.fullmatch(r"/me/messages/([^/]+)", path)):
            self._change(handler, found.group(1), body)
        elif method == "POST" and (found := re.fullmatch(r"/me/messages/([^/]+)/move", path)):
            self._move(handler, found.group(1), body)
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
        message = parse(raw)
        addressed = recipients(message)
        if not addressed:
            self._error(
                handler, 400, "ErrorInvalidRecipients", "At least one recipient is not valid."
            )
            return
        refused = [r for r in addressed if r in self.refused_recipients]
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
                GraphMessage(
                    self._new_id(), raw, datetime.now(UTC), internet_message_id=internet_id
                )
            )
        if self.relay is not None:
            self.relay(raw)
        handler.send_response(202)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _sent_items(self, handler: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        with self._lock:
            sent = list(self.sent_items)
        self._by_message_id(handler, query, sent, self._context("SentItems"))

    def _by_message_id(
        self,
        handler: BaseHTTPRequestHandler,
        query: dict[str, str],
        messages: list[GraphMessage],
        context: str,
    ) -> None:
        """The messages whose internetMessageId the `$filter` names."""
        found = re.fullmatch(r"internetMessageId eq '((?:[^']|'')*)'", query.get("$filter", ""))
        if found is None:
            self._error(handler, 400, "ErrorInvalidUrlQueryFilter", "Invalid filter clause")
            return
        wanted = found.group(1).replace("''", "'")
        select = _select(query)
        matches = [m.resource(select) for m in messages if m.internet_message_id == wanted]
        self._json(handler, {"@odata.context": context, "value": matches})

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
                if m.folder == "inbox"
                and (since_at is None or m.received_at >= since_at)
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
            self._not_found(handler)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(stored.raw)))
        handler.end_headers()
        handler.wfile.write(stored.raw)

    def _find(self, handler: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        with self._lock:
            received = list(self.inbox)
        context = f"{self.url}/$metadata#users('me')/messages"
        self._by_message_id(handler, query, received, context)

    def _folder(self, handler: BaseHTTPRequestHandler, key: str) -> None:
        name = _well_known(key)
        if name is None:
            self._not_found(handler)
            return
        self._json(handler, {"id": folder_id(name), "displayName": FOLDERS[name]})

    def _stored(self, handler: BaseHTTPRequestHandler, message_id: str) -> GraphMessage | None:
        if not self.writable:
            self._error(
                handler,
                403,
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            )
            return None
        with self._lock:
            stored = next((m for m in self.inbox if m.id == message_id), None)
        if stored is None:
            self._not_found(handler)
        return stored

    def _change(self, handler: BaseHTTPRequestHandler, message_id: str, body: bytes) -> None:
        stored = self._stored(handler, message_id)
        if stored is None:
            return
        document = json.loads(body)
        with self._lock:
            stored.is_read = bool(document.get("isRead", stored.is_read))
            stored.flag_status = document.get("flag", {}).get("flagStatus", stored.flag_status)
            stored.inference_classification = document.get(
                "inferenceClassification", stored.inference_classification
            )
        self._json(handler, stored.resource(set()))

    def _move(self, handler: BaseHTTPRequestHandler, message_id: str, body: bytes) -> None:
        stored = self._stored(handler, message_id)
        if stored is None:
            return
        destination = str(json.loads(body).get("destinationId", ""))
        name = _well_known(destination)
        if name is None:
            self._error(handler, 400, "ErrorInvalidIdMalformed", "Id is malformed.")
            return
        with self._lock:
            stored.folder = name
            stored.id = self._new_id()  # a moved message gets a new id, as in Exchange
        self._answer(handler, 201, stored.resource(set()))

    def _not_found(self, handler: BaseHTTPRequestHandler) -> None:
        self._error(
            handler, 404, "ErrorItemNotFound", "The specified object was not found in the store."
        )

    def _context(self, folder: str) -> str:
        return f"{self.url}/$metadata#users('me')/mailFolders('{folder}')/messages"

    def _error(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        code: str,
        message: str,
        headers: dict[str, Any] | None = None,
    ) -> None:
        error = {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": f"{next(self._ids):08d}-0000-0000-0000-000000000000",
            },
        }
        self._answer(handler, status, {"error": error}, headers, content_type="application/json")


def _well_known(key: str) -> str | None:
    """The well-known name of a folder given by that name or by its id."""
    return next((w for w in FOLDERS if key.lower() == w or key == folder_id(w)), None)


def _select(query: dict[str, str]) -> set[str]:
    return {name.strip() for name in query.get("$select", "").split(",") if name.strip()}


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
