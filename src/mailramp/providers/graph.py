"""Outlook and Microsoft 365 mailboxes through Microsoft Graph: sending as MIME, finding a
sent message again, and reading the inbox for replies and bounces.

Sending uses Graph's MIME form of `sendMail` (base64 MIME with `Content-Type: text/plain`):
the JSON form rejects the headers mailramp depends on (`List-Unsubscribe`, `Message-ID`,
`In-Reply-To`). Graph takes the recipients from the message's own To/Cc/Bcc headers.

What each answer means for a send:

    202                         accepted for delivery
    401                         refresh the token once and retry; again → MailboxUnusableError
    403, 404                    the mailbox may not send (scope, licence, suspended account)
                                → MailboxUnusableError: the recipient is not to blame
    429, 503 with Retry-After   wait (up to a cap) and retry; beyond it → GraphThrottledError
    400 about recipients, 4xx   PermanentSendError
    500, 502, 503               TransientSendError: Graph did not take the message
    504, connection lost after  UncertainSendError: Exchange may have taken it; look it up
    the body was sent           with `find_sent_message_id` before sending again

Graph allows four concurrent requests per mailbox and app (more are answered 429
"ApplicationThrottled"); every request of one `GraphClient` waits its turn for one of
`max_concurrency` slots, and a Retry-After pauses all of them, not only the one answered.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses
from typing import Any
from urllib.parse import urlsplit

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

GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
MAX_CONCURRENCY = 4
RECONNECT = "reconnect this mailbox"
# Graph's error codes for a sendMail whose recipients Exchange refuses outright.
RECIPIENT_ERRORS = frozenset(
    {"ErrorInvalidRecipients", "ErrorRecipientNotFound", "ErrorInvalidEmailAddress"}
)
# Graph has no UIDVALIDITY: the inbox position is a receivedDateTime, valid forever.
GRAPH_UID_VALIDITY = 1


class GraphThrottledError(ThrottledError):
    """Graph asked for a pause longer than this client waits; `retry_after` in seconds."""


class _ConnectionLost(Exception):
    """The connection broke after the request was sent: the answer is unknown."""


class GraphClient:
    """Authenticated Graph requests for one mailbox: bearer token (refreshed once on a 401),
    at most `max_concurrency` in flight, and Retry-After honoured up to `max_wait_seconds`."""

    def __init__(
        self,
        tokens: TokenSource,
        *,
        base_url: str = GRAPH_BASE_URL,
        http: httpx.AsyncClient | None = None,
        max_concurrency: int = MAX_CONCURRENCY,
        max_wait_seconds: float = 30,
        max_attempts: int = 4,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(60, connect=10))
        self._owns_http = http is None
        self._slots = asyncio.Semaphore(max_concurrency)
        self._max_wait = max_wait_seconds
        self._max_attempts = max_attempts
        self._refreshing = asyncio.Lock()
        self._paused_until = 0.0  # time.monotonic() before which no request starts

    async def close(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._owns_http:
            await self._http.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request (a path under the base URL, or a URL Graph gave us) and return
        the answer that is neither a 401 nor a throttling: the caller judges the rest.

        Raises MailboxUnusableError when a fresh token is refused too, GraphThrottledError
        when Graph asks for a longer pause than `max_wait_seconds` (or keeps asking),
        httpx.TransportError when nothing was sent, and _ConnectionLost when the connection
        broke after the request went out."""
        target = url if url.startswith(("http://", "https://")) else self.base_url + url
        self._check_same_origin(target)
        token = await self._tokens.access_token()
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            response = await self._send_once(method, target, token, params, content, headers)
            if response.status_code == 401:
                if refreshed:
                    raise MailboxUnusableError(
                        f"Microsoft refused the refreshed access token ({_error_text(response)}):"
                        f" {RECONNECT}"
                    )
                token = await self._refreshed_token(token)
                refreshed = True
                continue
            if response.status_code in (429, 503) and "Retry-After" in response.headers:
                wait = _retry_after(response)
                if wait > self._max_wait or attempt >= self._max_attempts:
                    raise GraphThrottledError(
                        f"Graph throttled the mailbox ({response.status_code}"
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
        params: Mapping[str, str] | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        pause = self._paused_until - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        async with self._slots:
            try:
                return await self._http.request(
                    method,
                    url,
                    params=params,
                    content=content,
                    headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                )
            except (httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError) as error:
                # The request was written; whether Graph acted on it is unknown.
                raise _ConnectionLost(str(error) or type(error).__name__) from error

    async def _refreshed_token(self, refused: str) -> str:
        # Concurrent 401s share one refresh: whoever comes second finds a new token.
        async with self._refreshing:
            current = await self._tokens.access_token()
            if current != refused:
                return current
            return await self._tokens.access_token(force_refresh=True)

    def _check_same_origin(self, url: str) -> None:
        # A nextLink is followed with the mailbox's bearer token: never to another host.
        base, target = urlsplit(self.base_url), urlsplit(url)
        if (base.scheme, base.netloc) != (target.scheme, target.netloc):
            raise TransientSendError(f"Graph pointed to another host: {target.netloc}")


class GraphProvider:
    """A Provider for one Outlook / Microsoft 365 mailbox linked by OAuth."""

    def __init__(
        self,
        email: str,
        tokens: TokenSource,
        *,
        base_url: str = GRAPH_BASE_URL,
        http: httpx.AsyncClient | None = None,
        max_concurrency: int = MAX_CONCURRENCY,
        max_wait_seconds: float = 30,
    ) -> None:
        self.email = email
        self.client = GraphClient(
            tokens,
            base_url=base_url,
            http=http,
            max_concurrency=max_concurrency,
            max_wait_seconds=max_wait_seconds,
        )

    def __repr__(self) -> str:
        return f"GraphProvider({self.email}, {self.client.base_url})"

    def inbox(self, **options: Any) -> GraphInbox:
        """The mailbox's inbox reader, sharing this provider's request slots."""
        return GraphInbox(self.client, **options)

    async def send(self, message: Message, *, sender: str, recipient: str) -> None:
        """Send one message through `POST /me/sendMail` in MIME form."""
        addressed = {
            address.lower()
            for _, address in getaddresses(
                [str(value) for name in ("To", "Cc", "Bcc") for value in message.get_all(name, [])]
            )
        }
        if recipient.lower() not in addressed:
            # Graph delivers to the headers' addresses, not to an envelope recipient.
            raise ValueError(f"{recipient} is not among the message's To/Cc/Bcc addresses")
        mime = message.as_bytes(policy=compat32.clone(linesep="\r\n"))
        try:
            response = await self.client.request(
                "POST",
                "/me/sendMail",
                content=base64.b64encode(mime),
                headers={"Content-Type": "text/plain"},
            )
        except _ConnectionLost as error:
            raise UncertainSendError(
                f"the connection to Graph broke after the message was sent; it may have"
                f" been accepted: {error}"
            ) from None
        except httpx.TransportError as error:
            raise TransientSendError(f"cannot reach Graph: {error!r}") from None
        status = response.status_code
        if status == 202:
            return
        text = f"sendMail answered {status} {_error_text(response)}"
        if status in (403, 404):
            raise MailboxUnusableError(f"{text}: the mailbox {sender} cannot send through Graph")
        if status == 504:
            # A gateway timeout: Exchange may still have taken the message.
            raise UncertainSendError(text)
        if status >= 500:
            raise TransientSendError(text)
        if status == 400 and _error_code(response) in RECIPIENT_ERRORS:
            raise PermanentSendError(f"the recipient {recipient} was refused: {text}")
        if status >= 400:
            raise PermanentSendError(text)
        raise TransientSendError(f"unexpected answer to sendMail: {text}")

    async def find_sent_message_id(self, message_id: str) -> str | None:
        """The internetMessageId Graph stored for a sent message with this Message-ID, or
        None when Sent Items has no such message (yet: the copy appears shortly after 202)."""
        quoted = message_id.replace("'", "''")  # OData string literals double their quotes
        page = await _read_json(
            self.client,
            "/me/mailFolders/SentItems/messages",
            params={
                "$filter": f"internetMessageId eq '{quoted}'",
                "$select": "internetMessageId,id",
            },
        )
        for item in page.get("value", []):
            stored = item.get("internetMessageId")
            if isinstance(stored, str):
                return stored
        return None

    async def close(self) -> None:
        """Close the HTTP client if the provider made it."""
        await self.client.close()


class GraphInbox:
    """The Inbox of one Graph mailbox, read by `receivedDateTime`.

    Position: the Inbox protocol's `last_uid` is the last message's receivedDateTime in
    epoch milliseconds. Graph gives whole seconds, so the newest `settle_seconds` are left
    for the next poll: a message received in the same second as the last one read, or
    indexed late, is not skipped. The first poll looks back `first_look_back`, not through
    the whole mailbox: replies can only follow mail sent after the mailbox was linked.

    The raw MIME (`$value`, one request per message) is fetched only for delivery reports
    and for messages Graph has no internet headers for (reports Exchange generated
    itself); for everything else the headers decide (In-Reply-To, References,
    Auto-Submitted), so a reply costs no extra request against the mailbox's quota.
    """

    def __init__(
        self,
        client: GraphClient,
        *,
        page_size: int = 50,
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
        base_url: str = GRAPH_BASE_URL,
        http: httpx.AsyncClient | None = None,
        **options: Any,
    ) -> GraphInbox:
        """An inbox reader with its own client (a provider's `inbox()` shares one)."""
        return cls(GraphClient(tokens, base_url=base_url, http=http), **options)

    async def fetch_new(self, *, uid_validity: int | None, last_uid: int | None) -> InboxBatch:
        """Messages received after the position `last_uid`, oldest first."""
        now = self._clock()
        if uid_validity == GRAPH_UID_VALIDITY and last_uid:
            since = datetime.fromtimestamp(last_uid / 1000, UTC)
        else:
            since, last_uid = now - self._first_look_back, 0
        until = now - self._settle
        listed: list[tuple[int, dict[str, Any]]] = []
        url: str | None = "/me/mailFolders/Inbox/messages"
        params: dict[str, str] | None = {
            "$filter": f"receivedDateTime ge {_iso(since)} and receivedDateTime lt {_iso(until)}",
            "$select": "internetMessageId,internetMessageHeaders,subject,from,receivedDateTime",
            "$orderby": "receivedDateTime",
            "$top": str(self._page_size),
        }
        while url is not None and len(listed) < self._max_messages:
            page = await _read_json(self._client, url, params=params)
            for item in page.get("value", []):
                position = _position(item)
                if position is not None and position > last_uid:
                    listed.append((position, item))
            next_link = page.get("@odata.nextLink")
            url, params = (next_link, None) if isinstance(next_link, str) else (None, None)
        if url is not None and listed and listed[0][0] != listed[-1][0]:
            # Stopped early: leave the last second whole for the next poll, since the
            # position cannot say which of its messages were read.
            newest = listed[-1][0]
            listed = [(position, item) for position, item in listed if position != newest]
        messages = [(position, await self._raw(item)) for position, item in listed]
        return InboxBatch(uid_validity=GRAPH_UID_VALIDITY, messages=messages)

    async def _raw(self, item: Mapping[str, Any]) -> bytes:
        headers = item.get("internetMessageHeaders") or []
        content_type = next(
            (
                str(header.get("value", ""))
                for header in headers
                if str(header.get("name", "")).lower() == "content-type"
            ),
            "",
        )
        if not headers or content_type.lower().startswith("multipart/report"):
            return await _read_bytes(self._client, f"/me/messages/{item['id']}/$value")
        lines = [f"{header.get('name')}: {header.get('value', '')}" for header in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")


async def _read_json(
    client: GraphClient, url: str, *, params: Mapping[str, str] | None = None
) -> dict[str, Any]:
    response = await _read(client, url, params=params)
    try:
        data = response.json()
    except ValueError:
        raise TransientSendError(f"Graph answered {url} with something not JSON") from None
    if not isinstance(data, dict):
        raise TransientSendError(f"Graph answered {url} with unexpected JSON")
    return data


async def _read_bytes(client: GraphClient, url: str) -> bytes:
    return (await _read(client, url)).content


async def _read(
    client: GraphClient, url: str, *, params: Mapping[str, str] | None = None
) -> httpx.Response:
    """A GET; reading is idempotent, so every failure but a refused mailbox is transient."""
    try:
        response = await client.request("GET", url, params=params)
    except (_ConnectionLost, httpx.TransportError) as error:
        raise TransientSendError(f"reading from Graph failed: {error!r}") from None
    if response.status_code in (403, 404) and url.startswith("/me/mailFolders"):
        raise MailboxUnusableError(
            f"Graph refused to read the mailbox ({response.status_code}"
            f" {_error_text(response)}): {RECONNECT}"
        )
    if response.status_code != 200:
        raise TransientSendError(
            f"Graph answered GET {url} with {response.status_code} {_error_text(response)}"
        )
    return response


def _position(item: Mapping[str, Any]) -> int | None:
    received = item.get("receivedDateTime")
    if not isinstance(received, str):
        return None
    moment = datetime.fromisoformat(received.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(float(response.headers["Retry-After"]), 0.0)
    except ValueError:
        return 0.0  # an HTTP-date: Graph sends seconds, so this is not worth parsing


def _error(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _error_code(response: httpx.Response) -> str:
    return str(_error(response).get("code", ""))


def _error_text(response: httpx.Response) -> str:
    error = _error(response)
    if not error:
        return response.reason_phrase
    return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")


__all__ = [
    "GRAPH_BASE_URL",
    "GRAPH_UID_VALIDITY",
    "GraphClient",
    "GraphInbox",
    "GraphProvider",
    "GraphThrottledError",
]
