"""Gmail and Google Workspace mailboxes through the Gmail API: sending the raw message,
reading back the Message-ID Gmail used, and reading the inbox for replies and bounces.

Sending uses `users.messages.send` with the whole RFC 5322 message, base64url encoded, in
the `raw` field: every header mailramp sets (`List-Unsubscribe`, `Message-ID`,
`In-Reply-To`) goes out as written. Gmail takes the recipients from the message's own
To/Cc/Bcc headers. Gmail may replace a Message-ID it does not accept, so the id it used is
read back with `sent_message_id(gmail_id)` (`send` keeps the Gmail id in `last_message_id`).

What each answer means for a send (the rest as in providers.http):

    200                         sent; the body is the new message resource ({id, threadId})
    429, 403 rateLimitExceeded  wait and retry: until the time the message names ("Retry
    / userRateLimitExceeded     after <RFC 3339 time>"), else Retry-After, else exponential
                                up to a cap; a longer pause, or still throttled after
                                `max_attempts` → GmailThrottledError
    400 invalidArgument         PermanentSendError (an invalid To header, a refused message)

The daily sending limit is such a throttling, answered with the time it lifts (often hours
away): the record is retried then, and no send from the mailbox asks Gmail before it.

The warm-up pool's receiving side (`GmailInbox.tend_warmup`) finds a message by its
Message-ID (`rfc822msgid:`, spam and trash included), marks it read and important, and
moves it out of spam (`messages.modify`: +INBOX -SPAM): that needs the `gmail.modify`
scope. A message in a category tab (Promotions, Updates) carries INBOX and counts as inbox.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Collection, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime
from email.message import Message
from typing import Any

import httpx

from mailramp.errors import ThrottledError, TransientSendError
from mailramp.kit.clock import Clock, utc_now
from mailramp.mailboxes.transport import InboxBatch, TendedWarmup, TokenSource
from mailramp.providers import http as api

GMAIL_BASE_URL = "https://gmail.googleapis.com"
API = "/gmail/v1/users/me"
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
# "User-rate limit exceeded.  Retry after 2026-11-25T18:00:00.000Z (Mail sending)"
RETRY_AFTER_TIME = re.compile(r"Retry after (\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d))")
# Where a message is, by the system labels that work as folders: spam first (a message in
# spam keeps no INBOX label, but be sure), then the inbox, then the bin.
FOLDER_LABELS = ("SPAM", "INBOX", "TRASH")
# Gmail has no UIDVALIDITY: the inbox position is an internalDate, valid forever.
GMAIL_UID_VALIDITY = 1


class GmailThrottledError(ThrottledError):
    """Gmail asked for a pause longer than this client waits (or kept asking);
    `retry_after` in seconds, `retry_at` when Gmail named the time."""


class GmailClient(api.ApiClient):
    """Authenticated Gmail API requests (paths under `/gmail/v1/users/me`) for one mailbox
    (see providers.http); without a time to wait for, a rate limit backs off exponentially
    from `backoff_seconds` up to `backoff_cap_seconds`."""

    service = "Gmail"
    issuer = "Google"
    default_base_url = GMAIL_BASE_URL
    throttled_error = GmailThrottledError

    def __init__(
        self,
        tokens: TokenSource,
        *,
        base_url: str = GMAIL_BASE_URL,
        http: httpx.AsyncClient | None = None,
        max_concurrency: int = api.MAX_CONCURRENCY,
        max_wait_seconds: float = 30,
        max_attempts: int = 4,
        backoff_seconds: float = 1.0,
        backoff_cap_seconds: float = 16.0,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(
            tokens,
            base_url=base_url,
            http=http,
            max_concurrency=max_concurrency,
            max_wait_seconds=max_wait_seconds,
            max_attempts=max_attempts,
            clock=clock,
        )
        self._backoff = backoff_seconds
        self._backoff_cap = backoff_cap_seconds

    def url_for(self, url: str) -> str:
        """A path under `/gmail/v1/users/me`."""
        return self.base_url + API + url

    def throttle(self, response: httpx.Response, *, attempt: int) -> api.Throttle | None:
        """A 429, or a 403 whose reason is a rate limit. A named time in the past, or one
        that cannot be read, counts as none."""
        if response.status_code != 429 and not (
            response.status_code == 403 and self.error_code(response) in RATE_LIMIT_REASONS
        ):
            return None
        until = retry_at(response)
        if until is not None and (seconds := (until - self.clock()).total_seconds()) > 0:
            return api.Throttle(seconds, until)
        seconds_asked = api.retry_after_seconds(response)
        if seconds_asked is not None:
            return api.Throttle(seconds_asked)
        return api.Throttle(min(self._backoff * 2 ** (attempt - 1), self._backoff_cap))

    def error_code(self, response: httpx.Response) -> str:
        """The reason of Gmail's first `error.errors` entry."""
        errors = api.error_body(response).get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("reason", ""))
        return ""

    def refusal(self, response: httpx.Response, *, recipient: str) -> str | None:
        """Gmail refused the message as written (an invalid To header)."""
        if self.error_code(response) == "invalidArgument":
            return f"the message to {recipient} was refused"
        return None


class GmailProvider(api.ApiProvider):
    """A Provider for one Gmail / Google Workspace mailbox linked by OAuth."""

    client: GmailClient
    profile_path = "/profile"  # users.getProfile
    profile_fields = ("emailAddress",)

    def __init__(
        self,
        email: str,
        client: GmailClient,
        *,
        sending_pauses: MutableMapping[str, datetime] | None = None,
    ) -> None:
        super().__init__(email, client=client)
        self.last_message_id: str | None = None  # Gmail's id of the last message sent
        # When Gmail named the time a mailbox's sending limit lifts, by address: nothing is
        # sent before it. A factory shares one among the providers it builds, so it outlives
        # this one (the worker builds a new provider whenever the mailbox changes, as when
        # its tokens are refreshed).
        self._sending_pauses = {} if sending_pauses is None else sending_pauses

    def inbox(self, **options: Any) -> GmailInbox:
        """The mailbox's inbox reader, sharing this provider's request slots."""
        return GmailInbox(self.client, **options)

    async def send(self, message: Message, *, sender: str, recipient: str) -> None:
        """Send one message through `users.messages.send` with the raw message; the Gmail
        id of what was sent is left in `last_message_id`."""
        raw = base64.urlsafe_b64encode(api.mime_for(message, recipient=recipient)).decode("ascii")
        self._check_not_paused()
        try:
            response = await self.client.send_request(
                "POST",
                "/messages/send",
                content=json.dumps({"raw": raw}).encode(),
                headers={"Content-Type": "application/json"},
            )
        except GmailThrottledError as error:
            if error.retry_at is not None:
                self._sending_pauses[self.email.lower()] = error.retry_at
            raise
        if response.status_code != 200:
            raise self.client.send_refused(
                response, operation="messages.send", sender=sender, recipient=recipient
            )
        try:
            gmail_id = self.client.json_of(response).get("id")
        except TransientSendError:
            # 200: Gmail took the message. An answer we cannot read must not make the
            # worker send it again; the Message-ID stays ours (replies may not match).
            gmail_id = None
        self.last_message_id = gmail_id if isinstance(gmail_id, str) else None

    async def sent_message_id(self, gmail_id: str) -> str | None:
        """The Message-ID header of the message Gmail stored under `gmail_id` (the one it
        actually sent), or None when there is no such message or it has no Message-ID."""
        response = await self.client.read_if_found(
            f"/messages/{gmail_id}", params={"format": "metadata", "metadataHeaders": "Message-ID"}
        )
        if response is None:
            return None
        return _header(self.client.json_of(response), "Message-ID")

    def _check_not_paused(self) -> None:
        # Every send before the time Gmail named would only be refused again: the record
        # waits without asking.
        until = self._sending_pauses.get(self.email.lower())
        if until is None:
            return
        seconds = (until - self.client.clock()).total_seconds()
        if seconds <= 0:
            self._sending_pauses.pop(self.email.lower(), None)
            return
        raise GmailThrottledError(
            f"Gmail's sending limit holds until {until.isoformat()}; retry after {seconds:g} s",
            retry_after=seconds,
            retry_at=until,
        )


class GmailInbox(api.ApiInbox):
    """The INBOX of one Gmail mailbox, read by `internalDate` (see http.ApiInbox for how far).

    Position: the Inbox protocol's `last_uid` is the newest message's internalDate (epoch
    milliseconds). `messages.list` searches with whole seconds (`after:`), so it asks from
    a second before the position and the exact cut is made on internalDate.

    Each listed message is fetched whole (`format=raw`, which carries its internalDate
    too) for the classifier, as the IMAP reader's is: a bounce in plain words names its
    failed recipient and the original only in its body. The whole window is listed (ids
    only), then at most `max_messages`, the oldest, are read.
    """

    default_page_size = 500

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
        fetched = await asyncio.gather(*(self._whole(i) for i in ids[: self._max_messages]))
        listed = sorted(
            (
                (position, item)
                for item in fetched
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
        messages = [(at, _b64url_decode(str(item.get("raw", "")))) for at, item in listed]
        return InboxBatch(uid_validity=GMAIL_UID_VALIDITY, messages=messages)

    async def tend_warmup(self, message_ids: Collection[str]) -> list[TendedWarmup]:
        """Find the warm-up emails `message_ids` under any label, spam and trash included;
        mark each read and important, and move those in spam to the inbox."""
        found = await asyncio.gather(*(self._tend_one(i.strip()) for i in message_ids))
        return [tended for tended in found if tended is not None]

    async def _tend_one(self, message_id: str) -> TendedWarmup | None:
        ids = await self._list(f"rfc822msgid:{message_id.strip('<>')}", spam_and_trash=True)
        for gmail_id in ids:
            item = await self._read_if_found(f"/messages/{gmail_id}", {"format": "minimal"})
            labels = set(item.get("labelIds") or []) if item is not None else {"DRAFT"}
            if labels & {"SENT", "DRAFT"}:
                continue  # the sender's own copy, when both ends share the account
            folder = next((name for name in FOLDER_LABELS if name in labels), "All Mail")
            placement = {"INBOX": "inbox", "SPAM": "spam"}.get(folder, "other")
            rescued = placement == "spam"
            changes = {
                "addLabelIds": ["IMPORTANT", "INBOX"] if rescued else ["IMPORTANT"],
                "removeLabelIds": ["UNREAD", "SPAM"] if rescued else ["UNREAD"],
            }
            if await self._client.change("POST", f"/messages/{gmail_id}/modify", changes) is None:
                continue  # deleted since it was found
            return TendedWarmup(message_id, placement, folder, rescued)
        return None

    async def _list(self, query: str, *, spam_and_trash: bool = False) -> list[str]:
        ids: list[str] = []
        token: str | None = None
        # Listing is cheap (ids only, up to 500 a page) and must reach the oldest message
        # of the window: the list is newest first, and the position moves from the oldest.
        while True:
            params = {"q": query, "maxResults": str(self._page_size)}
            if spam_and_trash:
                params["includeSpamTrash"] = "true"
            if token:
                params["pageToken"] = token
            page = self._client.json_of(await self._client.read("/messages", params=params))
            for item in page.get("messages") or []:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    ids.append(item["id"])
            following = page.get("nextPageToken")
            if not isinstance(following, str) or not following:
                break
            token = following
        return ids

    async def _whole(self, gmail_id: str) -> dict[str, Any] | None:
        return await self._read_if_found(f"/messages/{gmail_id}", {"format": "raw"})

    async def _read_if_found(
        self, path: str, params: Mapping[str, str | Sequence[str]]
    ) -> dict[str, Any] | None:
        response = await self._client.read_if_found(path, params=params)
        return None if response is None else self._client.json_of(response)


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


def retry_at(response: httpx.Response) -> datetime | None:
    """The time a rate-limit answer says to retry after ("Retry after <RFC 3339 time>" in
    its message, as Gmail answers when a sending limit is reached), or None."""
    error = api.error_body(response)
    texts = [error.get("message")]
    if isinstance(errors := error.get("errors"), list):
        texts += [item.get("message") for item in errors if isinstance(item, dict)]
    for text in texts:
        found = RETRY_AFTER_TIME.search(text) if isinstance(text, str) else None
        if found is None:
            continue
        try:
            moment = datetime.fromisoformat(found.group(1).replace("Z", "+00:00"))
        except ValueError:
            continue
        return moment.astimezone(UTC)
    return None


__all__ = [
    "GMAIL_BASE_URL",
    "GMAIL_UID_VALIDITY",
    "GmailClient",
    "GmailInbox",
    "GmailProvider",
    "GmailThrottledError",
]
