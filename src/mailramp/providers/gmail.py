"""Gmail and Google Workspace mailboxes through the Gmail API: sending the raw message,
reading back the Message-ID Gmail used, and reading the inbox for replies and bounces.

Sending uses `users.messages.send` with the whole RFC 5322 message, base64url encoded, in
the `raw` field: every header mailramp sets (`List-Unsubscribe`, `Message-ID`,
`In-Reply-To`) goes out as written. Gmail takes the recipients from the message's own
To/Cc/Bcc headers. Gmail may replace a Message-ID it does not accept, so the id it used is
read back with `sent_message_id(gmail_id)` (`send` keeps the Gmail id in `last_message_id`).

What each answer means for a send:

    200                         sent; the body is the new message resource ({id, threadId})
    401                         refresh the token once and retry; again → MailboxUnusableError
    429, 403 rateLimitExceeded  wait (Retry-After, else exponential up to a cap) and retry;
    / userRateLimitExceeded     still throttled after `max_attempts` → GmailThrottledError
    403 other, 404              the mailbox may not send (scope, suspended account)
                                → MailboxUnusableError: the recipient is not to blame
    400 invalidArgument, 4xx    PermanentSendError (an invalid To header, a refused message)
    500, 502, 503               TransientSendError: Gmail did not take the message
    504, connection lost after  UncertainSendError: Gmail may have sent it
    the body was sent

At most `max_concurrency` requests of one `GmailClient` are in flight at once, and a
back-off pauses all of them, not only the one answered.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses
from typing import Any

import httpx

from mailramp.kit.clock import Clock, utc_now
from mailramp.providers import (
    MailboxUnusableError,
    PermanentSendError,
    ThrottledError,
    TokenSource,
    TransientSendError,
    UncertainSendError,
)
from mailramp.providers.imap import InboxBatch

GMAIL_BASE_URL = "https://gmail.googleapis.com"
API = "/gmail/v1/users/me"
MAX_CONCURRENCY = 4
RECONNECT = "reconnect this mailbox"
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
# Gmail has no UIDVALIDITY: the inbox position is an internalDate, valid forever.
GMAIL_UID_VALIDITY = 1
# The headers the inbox asks for: enough for classify_inbound to tell a reply apart.
INBOX_HEADERS = (
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "From",
    "Subject",
    "Content-Type",
)


class GmailThrottledError(ThrottledError):
    """Gmail asked for a pause longer than this client waits (or kept asking);
    `retry_after` in seconds."""


class _ConnectionLost(Exception):
    """The connection broke after the request was sent: the answer is unknown."""


class GmailClient:
    """Authenticated Gmail API requests for one mailbox: bearer token (refreshed once on a
    401), at most `max_concurrency` in flight, rate limits waited out up to
    `max_wait_seconds` per pause and `max_attempts` tries."""

    def __init__(
        self,
        tokens: TokenSource,
        *,
        base_url: str = GMAIL_BASE_URL,
        http: httpx.AsyncClient | None = None,
        max_concurrency: int = MAX_CONCURRENCY,
        max_wait_seconds: float = 30,
        max_attempts: int = 4,
        backoff_seconds: float = 1.0,
        backoff_cap_seconds: float = 16.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(60, connect=10))
        self._owns_http = http is None
        self._slots = asyncio.Semaphore(max_concurrency)
        self._max_wait = max_wait_seconds
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._backoff_cap = backoff_cap_seconds
        self._refreshing = asyncio.Lock()
        self._paused_until = 0.0  # time.monotonic() before which no request starts

    async def close(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._owns_http:
            await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | Sequence[str]] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """Send one request (a path under `/gmail/v1/users/me`) and return the answer that
        is neither a 401 nor a rate limit: the caller judges the rest.

        Raises MailboxUnusableError when a fresh token is refused too, GmailThrottledError
        when Gmail keeps throttling or asks for a longer pause than `max_wait_seconds`,
        httpx.TransportError when nothing was sent, and _ConnectionLost when the connection
        broke after the request went out."""
        url = self.base_url + API + path
        content = None if json_body is None else json.dumps(json_body).encode()
        token = await self._tokens.access_token()
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            response = await self._send_once(method, url, token, params, content)
            if response.status_code == 401:
                if refreshed:
                    raise MailboxUnusableError(
                        f"Google refused the refreshed access token ({_error_text(response)}):"
                        f" {RECONNECT}"
                    )
                token = await self._refreshed_token(token)
                refreshed = True
                continue
            if _is_rate_limited(response):
                wait = _retry_after(response)
                if wait is None:
                    wait = min(self._backoff * 2 ** (attempt - 1), self._backoff_cap)
                if wait > self._max_wait or attempt >= self._max_attempts:
                    raise GmailThrottledError(
                        f"Gmail throttled the mailbox ({response.status_code}"
                        f" {_error_text(response)}); retry after {wait:g} s",
                        retry_after=wait,
                    )
                self._paused_until = max(self._paused_until, time.monotonic() + wait)
                continue
            return response

    async def _send_once(
        self,
        method: str,
        url: str,
        token: str,
        params: Mapping[str, str | Sequence[str]] | None,
        content: bytes | None,
    ) -> httpx.Response:
        pause = self._paused_until - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        headers = {"Authorization": f"Bearer {token}"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        async with self._slots:
            try:
                return await self._http.request(
                    method, url, params=params, content=content, headers=headers
                )
            except (httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError) as error:
                # The request was written; whether Gmail acted on it is unknown.
                raise _ConnectionLost(str(error) or type(error).__name__) from error

    async def _refreshed_token(self, refused: str) -> str:
        # Concurrent 401s share one refresh: whoever comes second finds a new token.
        async with self._refreshing:
            current = await self._tokens.access_token()
            if current != refused:
                return current
            return await self._tokens.access_token(force_refresh=True)


class GmailProvider:
    """A Provider for one Gmail / Google Workspace mailbox linked by OAuth."""

    def __init__(
        self,
        email: str,
        tokens: TokenSource,
        *,
        base_url: str = GMAIL_BASE_URL,
        http: httpx.AsyncClient | None = None,
        max_concurrency: int = MAX_CONCURRENCY,
        max_wait_seconds: float = 30,
        backoff_seconds: float = 1.0,
    ) -> None:
        self.email = email
        self.client = GmailClient(
            tokens,
            base_url=base_url,
            http=http,
            max_concurrency=max_concurrency,
            max_wait_seconds=max_wait_seconds,
            backoff_seconds=backoff_seconds,
        )
        self.last_message_id: str | None = None  # Gmail's id of the last message sent

    def __repr__(self) -> str:
        return f"GmailProvider({self.email}, {self.client.base_url})"

    def inbox(self, **options: Any) -> GmailInbox:
        """The mailbox's inbox reader, sharing this provider's request slots."""
        return GmailInbox(self.client, **options)

    async def send(self, message: Message, *, sender: str, recipient: str) -> None:
        """Send one message through `users.messages.send` with the raw message; the Gmail
        id of what was sent is left in `last_message_id`."""
        addressed = {
            address.lower()
            for _, address in getaddresses(
                [str(value) for name in ("To", "Cc", "Bcc") for value in message.get_all(name, [])]
            )
        }
        if recipient.lower() not in addressed:
            # Gmail delivers to the headers' addresses, not to an envelope recipient.
            raise ValueError(f"{recipient} is not among the message's To/Cc/Bcc addresses")
        mime = message.as_bytes(policy=compat32.clone(linesep="\r\n"))
        raw = base64.urlsafe_b64encode(mime).decode("ascii")
        try:
            response = await self.client.request("POST", "/messages/send", json_body={"raw": raw})
        except _ConnectionLost as error:
            raise UncertainSendError(
                f"the connection to Gmail broke after the message was sent; it may have"
                f" been accepted: {error}"
            ) from None
        except httpx.TransportError as error:
            raise TransientSendError(f"cannot reach Gmail: {error!r}") from None
        status = response.status_code
        if status == 200:
            sent = _json(response)
            gmail_id = sent.get("id")
            self.last_message_id = gmail_id if isinstance(gmail_id, str) else None
            return
        text = f"messages.send answered {status} {_error_text(response)}"
        if status in (403, 404):
            raise MailboxUnusableError(f"{text}: the mailbox {sender} cannot send through Gmail")
        if status == 504:
            # A gateway timeout: Gmail may still have sent the message.
            raise UncertainSendError(text)
        if status >= 500:
            raise TransientSendError(text)
        if status == 400 and _error_reason(response) == "invalidArgument":
            raise PermanentSendError(f"the message to {recipient} was refused: {text}")
        if status >= 400:
            raise PermanentSendError(text)
        raise TransientSendError(f"unexpected answer to messages.send: {text}")

    async def sent_message_id(self, gmail_id: str) -> str | None:
        """The Message-ID header of the message Gmail stored under `gmail_id` (the one it
        actually sent), or None when there is no such message or it has no Message-ID."""
        try:
            response = await self.client.request(
                "GET",
                f"/messages/{gmail_id}",
                params={"format": "metadata", "metadataHeaders": "Message-ID"},
            )
        except (_ConnectionLost, httpx.TransportError) as error:
            raise TransientSendError(f"reading from Gmail failed: {error!r}") from None
        if response.status_code == 404:
            return None
        _check_read(response, "messages.get")
        return _header(_json(response), "Message-ID")

    async def close(self) -> None:
        """Close the HTTP client if the provider made it."""
        await self.client.close()


class GmailInbox:
    """The INBOX of one Gmail mailbox, read by `internalDate`.

    Position: the Inbox protocol's `last_uid` is the newest message's internalDate (epoch
    milliseconds). `messages.list` searches with whole seconds (`after:`), so it asks from
    a second before the position and the exact cut is made on internalDate. The newest
    `settle_seconds` are left for the next poll: a message Gmail indexes late is not
    skipped. The first poll looks back `first_look_back`, not through the whole mailbox.

    Each listed message is fetched as metadata with the headers classify_inbound needs;
    the whole raw message (`format=raw`) only for delivery reports (a mailer-daemon or
    postmaster sender, or a `multipart/report`), so a reply costs one small request. The
    whole window is listed (ids only), then at most `max_messages`, the oldest, are read.
    """

    def __init__(
        self,
        client: GmailClient,
        *,
        page_size: int = 500,
        max_messages: int = 200,
        settle_seconds: float = 60,
        first_look_back: timedelta = timedelta(days=30),
        clock: Clock = utc_now,
    ) -> None:
        self._client = client
        self._page_size = page_size
        self._max_messages = max_messages
        self._settle = timedelta(seconds=settle_seconds)
        self._first_look_back = first_look_back
        self._clock = clock

    @classmethod
    def connect(
        cls,
        tokens: TokenSource,
        *,
        base_url: str = GMAIL_BASE_URL,
        http: httpx.AsyncClient | None = None,
        **options: Any,
    ) -> GmailInbox:
        """An inbox reader with its own client (a provider's `inbox()` shares one)."""
        return cls(GmailClient(tokens, base_url=base_url, http=http), **options)

    async def fetch_new(self, *, uid_validity: int | None, last_uid: int | None) -> InboxBatch:
        """Messages received after the position `last_uid`, oldest first."""
        now = self._clock()
        if uid_validity == GMAIL_UID_VALIDITY and last_uid:
            since_ms = last_uid
        else:
            since_ms = int((now - self._first_look_back).timestamp() * 1000)
            last_uid = since_ms - 1
        until_ms = int((now - self._settle).timestamp() * 1000)
        ids = await self._list(
            f"in:inbox after:{since_ms // 1000 - 1} before:{until_ms // 1000 + 1}"
        )
        # messages.list answers newest first: read the oldest first, `max_messages` at most.
        ids.reverse()
        stopped_early = len(ids) > self._max_messages
        metadata = await asyncio.gather(*(self._metadata(i) for i in ids[: self._max_messages]))
        listed = sorted(
            (
                (position, item)
                for item in metadata
                if item is not None
                and (position := _internal_date(item)) is not None
                and last_uid < position < until_ms
            ),
            key=lambda pair: pair[0],
        )
        if stopped_early and listed and listed[0][0] != listed[-1][0]:
            # Leave the newest millisecond whole for the next poll, since the position
            # cannot say which of its messages were read.
            newest = listed[-1][0]
            listed = [(position, item) for position, item in listed if position != newest]
        raws = await asyncio.gather(*(self._raw(item) for _, item in listed))
        messages = [(position, raw) for (position, _), raw in zip(listed, raws, strict=True)]
        return InboxBatch(uid_validity=GMAIL_UID_VALIDITY, messages=messages)

    async def _list(self, query: str) -> list[str]:
        ids: list[str] = []
        token: str | None = None
        # Listing is cheap (ids only, up to 500 a page) and must reach the oldest message
        # of the window: the list is newest first, and the position moves from the oldest.
        while True:
            params = {"q": query, "maxResults": str(self._page_size)}
            if token:
                params["pageToken"] = token
            page = await _read_json(self._client, "/messages", params)
            for item in page.get("messages") or []:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    ids.append(item["id"])
            following = page.get("nextPageToken")
            if not isinstance(following, str) or not following:
                break
            token = following
        return ids

    async def _metadata(self, gmail_id: str) -> dict[str, Any] | None:
        params: dict[str, str | Sequence[str]] = {
            "format": "metadata",
            "metadataHeaders": list(INBOX_HEADERS),
        }
        found: dict[str, Any] | None = await _read_json(
            self._client, f"/messages/{gmail_id}", params, missing_ok=True
        )
        return found

    async def _raw(self, item: Mapping[str, Any]) -> bytes:
        sender = (_header(item, "From") or "").lower()
        content_type = (_header(item, "Content-Type") or "").lower()
        if (
            "mailer-daemon" in sender
            or "postmaster" in sender
            or content_type.startswith("multipart/report")
        ):
            full = await _read_json(
                self._client, f"/messages/{item['id']}", {"format": "raw"}, missing_ok=True
            )
            if full is not None and isinstance(full.get("raw"), str):
                return _b64url_decode(full["raw"])
        payload = item.get("payload")
        headers = (payload.get("headers") or []) if isinstance(payload, dict) else []
        lines = [f"{header.get('name')}: {header.get('value', '')}" for header in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")


async def _read_json(
    client: GmailClient,
    path: str,
    params: Mapping[str, str | Sequence[str]],
    *,
    missing_ok: bool = False,
) -> Any:
    """A GET; reading is idempotent, so every failure but a refused mailbox is transient.
    With `missing_ok`, a 404 (a message deleted since it was listed) is None."""
    try:
        response = await client.request("GET", path, params=params)
    except (_ConnectionLost, httpx.TransportError) as error:
        raise TransientSendError(f"reading from Gmail failed: {error!r}") from None
    if missing_ok and response.status_code == 404:
        return None
    _check_read(response, f"GET {path}")
    return _json(response)


def _check_read(response: httpx.Response, what: str) -> None:
    if response.status_code == 403:
        raise MailboxUnusableError(
            f"Gmail refused to read the mailbox ({_error_text(response)}): {RECONNECT}"
        )
    if response.status_code != 200:
        raise TransientSendError(
            f"Gmail answered {what} with {response.status_code} {_error_text(response)}"
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise TransientSendError("Gmail answered with something not JSON") from None
    if not isinstance(data, dict):
        raise TransientSendError("Gmail answered with unexpected JSON")
    return data


def _header(item: Mapping[str, Any], name: str) -> str | None:
    payload = item.get("payload")
    headers = payload.get("headers") if isinstance(payload, dict) else None
    for header in headers or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == name.lower():
            return str(header.get("value", ""))
    return None


def _internal_date(item: Mapping[str, Any]) -> int | None:
    try:
        return int(item["internalDate"])
    except (KeyError, TypeError, ValueError):
        return None


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _is_rate_limited(response: httpx.Response) -> bool:
    if response.status_code == 429:
        return True
    return response.status_code == 403 and _error_reason(response) in RATE_LIMIT_REASONS


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP-date: fall back to the exponential back-off


def _error(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _error_reason(response: httpx.Response) -> str:
    errors = _error(response).get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("reason", ""))
    return ""


def _error_text(response: httpx.Response) -> str:
    error = _error(response)
    if not error:
        return response.reason_phrase
    return f"{_error_reason(response)}: {error.get('message', '')}".strip(": ")


__all__ = [
    "GMAIL_BASE_URL",
    "GMAIL_UID_VALIDITY",
    "GmailClient",
    "GmailInbox",
    "GmailProvider",
    "GmailThrottledError",
]
