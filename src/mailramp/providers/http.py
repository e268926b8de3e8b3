"""What the Graph and Gmail providers share: one mailbox's authenticated API requests, and
the sending and reading built on them.

`ApiClient` sends a mailbox's requests with the bearer token of its TokenSource: a 401
refreshes the token once (concurrent 401s share that one refresh), at most
`max_concurrency` requests are in flight, and a throttling is waited out up to
`max_wait_seconds` per pause and `max_attempts` tries, then handed back as the API's
ThrottledError. A pause holds back every request of the client, not only the one answered.
Each API says "slow down" its own way, so each subclass reads the answer in `throttle()`:

    Graph   429 or 503 with Retry-After (seconds)
    Gmail   429, or 403 rateLimitExceeded / userRateLimitExceeded: the time its message
            names ("Retry after <RFC 3339 time>"), else Retry-After, else an exponential
            back-off

What a send's answer means once it is neither a 401 nor a throttling (`send_refused`):

    403, 404                    the mailbox may not send (scope, licence, suspended account)
                                → MailboxUnusableError: the recipient is not to blame
    504, connection lost after  UncertainSendError: the API may have taken the message
    the body was sent
    500, 502, 503               TransientSendError: the API did not take the message
    other 4xx                   PermanentSendError (an address or message it refuses)

A change to a message (the warm-up pool's move, flag and label, `change`) is idempotent:
a 404 means the message is gone, a 403 that the grant does not allow changes
(MailboxUnusableError: reconnect), anything else but success is transient.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses
from typing import Any, ClassVar

import httpx

from mailramp.errors import (
    MailboxUnusableError,
    PermanentSendError,
    ProviderError,
    ThrottledError,
    TransientSendError,
    UncertainSendError,
)
from mailramp.kit.clock import Clock, utc_now
from mailramp.mailboxes.transport import TokenSource

MAX_CONCURRENCY = 4
RECONNECT = "reconnect this mailbox"

Params = Mapping[str, str | Sequence[str]]


@dataclass(frozen=True)
class Throttle:
    """An API's request to slow down: wait `seconds`; `until` when it named the time."""

    seconds: float
    until: datetime | None = None


class ConnectionLost(Exception):
    """The connection broke after the request was sent: the answer is unknown."""


class ApiClient:
    """Authenticated requests for one mailbox; subclasses say how their API throttles,
    phrases its errors and refuses a message."""

    service: ClassVar[str]  # the API, as errors name it
    issuer: ClassVar[str]  # who issues its access tokens
    default_base_url: ClassVar[str]
    throttled_error: ClassVar[type[ThrottledError]] = ThrottledError

    def __init__(
        self,
        tokens: TokenSource,
        *,
        base_url: str | None = None,
        http: httpx.AsyncClient | None = None,
        max_concurrency: int = MAX_CONCURRENCY,
        max_wait_seconds: float = 30,
        max_attempts: int = 4,
        clock: Clock = utc_now,
    ) -> None:
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.clock = clock
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

    # What each API does its own way.

    def url_for(self, url: str) -> str:
        """Where a request for `url` goes: a path under the base URL."""
        return self.base_url + url

    def throttle(self, response: httpx.Response, *, attempt: int) -> Throttle | None:
        """How long the answer to the `attempt`-th try asks to wait; None when it does not."""
        raise NotImplementedError

    def error_code(self, response: httpx.Response) -> str:
        """The machine-readable code of an error answer, or ""."""
        raise NotImplementedError

    def refusal(self, response: httpx.Response, *, recipient: str) -> str | None:
        """What a 400 to a send says about the message or recipient, when it says so."""
        return None

    def refuses_reading(self, response: httpx.Response, *, url: str) -> bool:
        """Whether the answer to a read means the mailbox may not be read at all."""
        return response.status_code == 403

    # The shared machinery.

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request and return the answer that is neither a 401 nor a throttling:
        the caller judges the rest.

        Raises MailboxUnusableError when a fresh token is refused too, the API's
        ThrottledError when it asks for a longer pause than `max_wait_seconds` (or keeps
        asking), httpx.TransportError when nothing was sent, and ConnectionLost when the
        connection broke after the request went out."""
        target = self.url_for(url)
        token = await self._tokens.access_token()
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            response = await self._send_once(method, target, token, params, content, headers)
            if response.status_code == 401:
                if refreshed:
                    raise MailboxUnusableError(
                        f"{self.issuer} refused the refreshed access token"
                        f" ({self.error_text(response)}): {RECONNECT}"
                    )
                token = await self._refreshed_token(token)
                refreshed = True
                continue
            throttle = self.throttle(response, attempt=attempt)
            if throttle is None:
                return response
            if throttle.seconds > self._max_wait or attempt >= self._max_attempts:
                raise self.throttled_error(
                    f"{self.service} throttled the mailbox ({response.status_code}"
                    f" {self.error_text(response)}); retry after {throttle.seconds:g} s",
                    retry_after=throttle.seconds,
                    retry_at=throttle.until,
                )
            self._paused_until = max(self._paused_until, time.monotonic() + throttle.seconds)

    async def send_request(
        self, method: str, url: str, *, content: bytes, headers: Mapping[str, str]
    ) -> httpx.Response:
        """`request` for handing a message over, with what went wrong on the way said as a
        send error: a broken connection is uncertain, an unreachable API transient."""
        try:
            return await self.request(method, url, content=content, headers=headers)
        except ConnectionLost as error:
            raise UncertainSendError(
                f"the connection to {self.service} broke after the message was sent; it may"
                f" have been accepted: {error}"
            ) from None
        except httpx.TransportError as error:
            raise TransientSendError(f"cannot reach {self.service}: {error!r}") from None

    def send_refused(
        self, response: httpx.Response, *, operation: str, sender: str, recipient: str
    ) -> ProviderError:
        """The error for a send the API answered with something other than success."""
        status = response.status_code
        text = f"{operation} answered {status} {self.error_text(response)}"
        if status in (403, 404):
            return MailboxUnusableError(
                f"{text}: the mailbox {sender} cannot send through {self.service}"
            )
        if status == 504:
            # A gateway timeout: the API may still have taken the message.
            return UncertainSendError(text)
        if status >= 500:
            return TransientSendError(text)
        if status >= 400:
            refusal = self.refusal(response, recipient=recipient) if status == 400 else None
            return PermanentSendError(f"{refusal}: {text}" if refusal else text)
        return TransientSendError(f"unexpected answer to {operation}: {text}")

    async def read(self, url: str, *, params: Params | None = None) -> httpx.Response:
        """A GET answered 200; reading is idempotent, so every failure but a refused
        mailbox is transient."""
        response = await self._get(url, params)
        self._check_read(response, url=url)
        return response

    async def read_if_found(
        self, url: str, *, params: Params | None = None
    ) -> httpx.Response | None:
        """`read`, with a 404 (a message deleted since it was listed) as None."""
        response = await self._get(url, params)
        if response.status_code == 404:
            return None
        self._check_read(response, url=url)
        return response

    async def change(
        self, method: str, url: str, document: Mapping[str, Any]
    ) -> httpx.Response | None:
        """A request that changes a message (`document` as JSON), answered 2xx; None when
        the message is gone (404)."""
        try:
            response = await self.request(
                method,
                url,
                content=json.dumps(document).encode(),
                headers={"Content-Type": "application/json"},
            )
        except (ConnectionLost, httpx.TransportError) as error:
            raise TransientSendError(
                f"changing a message through {self.service} failed: {error!r}"
            ) from None
        status = response.status_code
        if status == 404:
            return None
        if status == 403:
            raise MailboxUnusableError(
                f"{self.service} refused to change a message ({status}"
                f" {self.error_text(response)}): {RECONNECT} to grant the changes warm-up makes"
            )
        if not 200 <= status < 300:
            raise TransientSendError(
                f"{self.service} answered {method} {url} with {status} {self.error_text(response)}"
            )
        return response

    def json_of(self, response: httpx.Response) -> dict[str, Any]:
        """The JSON object of an answer; anything else is a transient failure."""
        try:
            data = response.json()
        except ValueError:
            raise TransientSendError(
                f"{self.service} answered {response.request.url.path} with something not JSON"
            ) from None
        if not isinstance(data, dict):
            raise TransientSendError(
                f"{self.service} answered {response.request.url.path} with unexpected JSON"
            )
        return data

    def error_text(self, response: httpx.Response) -> str:
        """The error of an answer as people read it: its code and message."""
        error = error_body(response)
        if not error:
            return response.reason_phrase
        return f"{self.error_code(response)}: {error.get('message', '')}".strip(": ")

    async def _get(self, url: str, params: Params | None) -> httpx.Response:
        try:
            return await self.request("GET", url, params=params)
        except (ConnectionLost, httpx.TransportError) as error:
            raise TransientSendError(f"reading from {self.service} failed: {error!r}") from None

    def _check_read(self, response: httpx.Response, *, url: str) -> None:
        status = response.status_code
        if self.refuses_reading(response, url=url):
            raise MailboxUnusableError(
                f"{self.service} refused to read the mailbox ({status}"
                f" {self.error_text(response)}): {RECONNECT}"
            )
        if status != 200:
            raise TransientSendError(
                f"{self.service} answered GET {url} with {status} {self.error_text(response)}"
            )

    async def _send_once(
        self,
        method: str,
        url: str,
        token: str,
        params: Params | None,
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
                # The request was written; whether the API acted on it is unknown.
                raise ConnectionLost(str(error) or type(error).__name__) from error

    async def _refreshed_token(self, refused: str) -> str:
        # Concurrent 401s share one refresh: whoever comes second finds a new token.
        async with self._refreshing:
            current = await self._tokens.access_token()
            if current != refused:
                return current
            return await self._tokens.access_token(force_refresh=True)


class ApiProvider:
    """What a Provider sending through a mailbox API keeps: the address and its client.
    Each API names the account's profile (`profile_path`) and where its address is."""

    profile_path: ClassVar[str]
    profile_fields: ClassVar[tuple[str, ...]]
    profile_params: ClassVar[Mapping[str, str]] = {}

    def __init__(self, email: str, *, client: ApiClient) -> None:
        self.email = email
        self.client = client

    async def check(self) -> None:
        """ "Test connection": a working token (refreshed if it is due, so a revoked grant
        shows as "reconnect this mailbox") and the profile of the account it opens, which
        must be this mailbox's. Nothing is sent or read from the mailbox."""
        response = await self.client.read(self.profile_path, params=self.profile_params)
        profile = self.client.json_of(response)
        address = next(
            (profile[name] for name in self.profile_fields if isinstance(profile.get(name), str)),
            None,
        )
        if address is None or address.lower() != self.email.lower():
            raise MailboxUnusableError(
                f"the token opens {address or 'an account without an address'}, not "
                f"{self.email}: {RECONNECT} with the right account"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.email}, {self.client.base_url})"

    async def close(self) -> None:
        """Close the HTTP client if the provider made it."""
        await self.client.close()


class ApiInbox:
    """What the Graph and Gmail inbox readers share: their client, and how far they read.

    The newest `settle_seconds` are left for the next poll, so a message the API indexes
    late is not skipped; the first poll looks back `first_look_back`, not through the
    whole mailbox: replies can only follow mail sent after the mailbox was linked."""

    default_page_size: ClassVar[int]

    def __init__(
        self,
        client: ApiClient,
        *,
        page_size: int | None = None,
        max_messages: int = 200,
        settle_seconds: float = 60,
        first_look_back: timedelta = timedelta(days=30),
        clock: Clock = utc_now,
    ) -> None:
        self._client = client
        self._page_size = page_size or self.default_page_size
        self._max_messages = max_messages
        self._settle = timedelta(seconds=settle_seconds)
        self._first_look_back = first_look_back
        self._clock = clock


def mime_for(message: Message, *, recipient: str) -> bytes:
    """The message as CRLF MIME bytes; ValueError unless `recipient` is among its To/Cc/Bcc
    addresses (the APIs deliver to the headers' addresses, not to an envelope recipient)."""
    addressed = {
        address.lower()
        for _, address in getaddresses(
            [str(value) for name in ("To", "Cc", "Bcc") for value in message.get_all(name, [])]
        )
    }
    if recipient.lower() not in addressed:
        raise ValueError(f"{recipient} is not among the message's To/Cc/Bcc addresses")
    return message.as_bytes(policy=compat32.clone(linesep="\r\n"))


def error_body(response: httpx.Response) -> dict[str, Any]:
    """The `error` object both APIs answer errors with, or {}."""
    try:
        data = response.json()
    except ValueError:
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds; None without one or for an HTTP-date (neither
    API sends dates)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
