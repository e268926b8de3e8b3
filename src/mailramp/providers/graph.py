"""Outlook and Microsoft 365 mailboxes through Microsoft Graph: sending as MIME, finding a
sent message again, and reading the inbox for replies and bounces.

Sending uses Graph's MIME form of `sendMail` (base64 MIME with `Content-Type: text/plain`):
the JSON form rejects the headers mailramp depends on (`List-Unsubscribe`, `Message-ID`,
`In-Reply-To`). Graph takes the recipients from the message's own To/Cc/Bcc headers.

What each answer means for a send (the rest as in providers.http):

    202                         accepted for delivery
    429, 503 with Retry-After   wait (up to a cap) and retry; beyond it → GraphThrottledError
    400 about recipients        PermanentSendError naming the recipient
    504, connection lost after  UncertainSendError: Exchange may have taken it; look it up
    the body was sent           with `find_sent_message_id` before sending again

The warm-up pool's receiving side (`GraphInbox.tend_warmup`) finds a message by its
`internetMessageId` in every folder (`/me/messages`), marks it read, flagged and Focused,
and moves it out of Junk Email (`/move`, destination `inbox`): that needs `Mail.ReadWrite`.

Graph allows four concurrent requests per mailbox and app (more are answered 429
"ApplicationThrottled"); every request of one `GraphClient` waits its turn for one of
`max_concurrency` slots, and a Retry-After pauses all of them, not only the one answered.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from email.message import Message
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from mailramp.errors import ThrottledError, TransientSendError
from mailramp.mailboxes.transport import InboxBatch, TendedWarmup
from mailramp.providers import http as api

GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
# Graph's error codes for a sendMail whose recipients Exchange refuses outright.
RECIPIENT_ERRORS = frozenset(
    {"ErrorInvalidRecipients", "ErrorRecipientNotFound", "ErrorInvalidEmailAddress"}
)
# Graph has no UIDVALIDITY: the inbox position is a receivedDateTime, valid forever.
GRAPH_UID_VALIDITY = 1


class GraphThrottledError(ThrottledError):
    """Graph asked for a pause longer than this client waits; `retry_after` in seconds."""


class GraphClient(api.ApiClient):
    """Authenticated Graph requests for one mailbox (see providers.http): Retry-After on a
    429 or 503 is honoured up to `max_wait_seconds`, and a URL Graph gave us (a nextLink)
    is followed only to Graph's own host."""

    service = "Graph"
    issuer = "Microsoft"
    default_base_url = GRAPH_BASE_URL
    throttled_error = GraphThrottledError

    def url_for(self, url: str) -> str:
        """A path under the base URL, or a URL Graph gave us."""
        target = url if url.startswith(("http://", "https://")) else self.base_url + url
        # A nextLink is followed with the mailbox's bearer token: never to another host.
        base, parts = urlsplit(self.base_url), urlsplit(target)
        if (base.scheme, base.netloc) != (parts.scheme, parts.netloc):
            raise TransientSendError(f"Graph pointed to another host: {parts.netloc}")
        return target

    def throttle(self, response: httpx.Response, *, attempt: int) -> api.Throttle | None:
        """A 429 or 503 with Retry-After (an unreadable one: at once)."""
        if response.status_code in (429, 503) and "Retry-After" in response.headers:
            return api.Throttle(api.retry_after_seconds(response) or 0.0)
        return None

    def error_code(self, response: httpx.Response) -> str:
        """Graph's `error.code`."""
        return str(api.error_body(response).get("code", ""))

    def refusal(self, response: httpx.Response, *, recipient: str) -> str | None:
        """Exchange refused the recipient outright."""
        if self.error_code(response) in RECIPIENT_ERRORS:
            return f"the recipient {recipient} was refused"
        return None

    def refuses_reading(self, response: httpx.Response, *, url: str) -> bool:
        """A 403 (no Mail.Read), or a 404 for a mail folder (no mailbox)."""
        status = response.status_code
        return status == 403 or (status == 404 and url.startswith("/me/mailFolders"))


class GraphProvider(api.ApiProvider):
    """A Provider for one Outlook / Microsoft 365 mailbox linked by OAuth."""

    client: GraphClient
    profile_path = "/me"
    profile_fields = ("mail", "userPrincipalName")
    profile_params: ClassVar[Mapping[str, str]] = {"$select": "mail,userPrincipalName"}

    def __init__(self, email: str, client: GraphClient) -> None:
        super().__init__(email, client=client)

    def inbox(self, **options: Any) -> GraphInbox:
        """The mailbox's inbox reader, sharing this provider's request slots."""
        return GraphInbox(self.client, **options)

    async def send(self, message: Message, *, sender: str, recipient: str) -> None:
        """Send one message through `POST /me/sendMail` in MIME form."""
        mime = api.mime_for(message, recipient=recipient)
        response = await self.client.send_request(
            "POST",
            "/me/sendMail",
            content=base64.b64encode(mime),
            headers={"Content-Type": "text/plain"},
        )
        if response.status_code != 202:
            raise self.client.send_refused(
                response, operation="sendMail", sender=sender, recipient=recipient
            )

    async def find_sent_message_id(self, message_id: str) -> str | None:
        """The internetMessageId Graph stored for a sent message with this Message-ID, or
        None when Sent Items has no such message (yet: the copy appears shortly after 202)."""
        quoted = message_id.replace("'", "''")  # OData string literals double their quotes
        response = await self.client.read(
            "/me/mailFolders/SentItems/messages",
            params={
                "$filter": f"internetMessageId eq '{quoted}'",
                "$select": "internetMessageId,id",
            },
        )
        for item in self.client.json_of(response).get("value", []):
            stored = item.get("internetMessageId")
            if isinstance(stored, str):
                return stored
        return None


class GraphInbox(api.ApiInbox):
    """The Inbox of one Graph mailbox, read by `receivedDateTime` (see http.ApiInbox for how far).

    Position: the Inbox protocol's `last_uid` is the last message's receivedDateTime in
    epoch milliseconds. Graph gives whole seconds, so the newest `settle_seconds` are left
    for the next poll: a message received in the same second as the last one read, or
    indexed late, is not skipped.

    Each message's raw MIME (`$value`, one request per message) goes to the classifier,
    as the IMAP reader's does: a bounce in plain words names its failed recipient and
    the original only in its body.
    """

    default_page_size = 50

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
            "$select": "receivedDateTime",
            "$orderby": "receivedDateTime",
            "$top": str(self._page_size),
        }
        while url is not None and len(listed) < self._max_messages:
            page = self._client.json_of(await self._client.read(url, params=params))
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
        return (await self._client.read(f"/me/messages/{item['id']}/$value")).content

    async def tend_warmup(self, message_ids: Collection[str]) -> list[TendedWarmup]:
        """Find the warm-up emails `message_ids` in any folder; mark each read, flagged and
        Focused, and move those in Junk Email to the Inbox."""
        folders = _Folders(self._client)
        await folders.well_known("inbox")
        await folders.well_known("junkemail")
        found = await asyncio.gather(*(self._tend_one(i.strip(), folders) for i in message_ids))
        return [tended for tended in found if tended is not None]

    async def _tend_one(self, message_id: str, folders: _Folders) -> TendedWarmup | None:
        quoted = message_id.replace("'", "''")
        response = await self._client.read(
            "/me/messages",
            params={
                "$filter": f"internetMessageId eq '{quoted}'",
                "$select": "id,parentFolderId,isDraft",
            },
        )
        items = self._client.json_of(response).get("value", [])
        for item in items:
            if not isinstance(item, dict) or item.get("isDraft") or "id" not in item:
                continue
            folder_id = str(item.get("parentFolderId", ""))
            inbox, junk = await folders.well_known("inbox"), await folders.well_known("junkemail")
            placement = "inbox" if folder_id == inbox else "spam" if folder_id == junk else "other"
            changed = await self._client.change(
                "PATCH",
                f"/me/messages/{item['id']}",
                {
                    "isRead": True,
                    "flag": {"flagStatus": "flagged"},
                    "inferenceClassification": "focused",
                },
            )
            if changed is None:  # deleted since it was found
                continue
            name = await folders.name(folder_id)
            rescued = placement == "spam"
            if rescued:
                moved = await self._client.change(
                    "POST", f"/me/messages/{item['id']}/move", {"destinationId": "inbox"}
                )
                rescued = moved is not None
            return TendedWarmup(message_id, placement, name, rescued)
        return None


class _Folders:
    """The ids of the well-known folders and the names of the others, each asked once."""

    def __init__(self, client: api.ApiClient) -> None:
        self._client = client
        self._ids: dict[str, str] = {}
        self._names: dict[str, str] = {}

    async def well_known(self, name: str) -> str:
        if name not in self._ids:
            folder = await self._folder(name)
            self._ids[name] = str(folder.get("id", "")) if folder else ""
        return self._ids[name]

    async def name(self, folder_id: str) -> str:
        if folder_id not in self._names:
            folder = await self._folder(folder_id) if folder_id else None
            self._names[folder_id] = str(folder.get("displayName", "")) if folder else ""
        return self._names[folder_id] or "(unknown folder)"

    async def _folder(self, key: str) -> dict[str, Any] | None:
        response = await self._client.read_if_found(
            f"/me/mailFolders/{key}", params={"$select": "id,displayName"}
        )
        return None if response is None else self._client.json_of(response)


def _position(item: Mapping[str, Any]) -> int | None:
    received = item.get("receivedDateTime")
    if not isinstance(received, str):
        return None
    moment = datetime.fromisoformat(received.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "GRAPH_BASE_URL",
    "GRAPH_UID_VALIDITY",
    "GraphClient",
    "GraphInbox",
    "GraphProvider",
    "GraphThrottledError",
]
