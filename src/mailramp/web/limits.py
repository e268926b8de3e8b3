"""Bodies the server will not hold: requests over the configured size, and JSON it cannot
parse, answered with a 4xx that says what was wrong.

A body over its route's limit is refused with 413 before it is read when Content-Length
announces it, or as soon as what has arrived passes the limit (chunked uploads), so no
request makes the server hold more than the limit in memory.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """The request body passed the limit while it was being read."""

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(413, _too_large(limit, setting))


def _too_large(limit: int, setting: str) -> str:
    return f"body: the request body is larger than {limit:,} bytes, this server's limit ({setting})"


UPLOAD_ROUTES = (
    re.compile(r"/api/v1/campaigns/[^/]+/recipients"),
    re.compile(r"/campaigns/new"),
    re.compile(r"/campaigns/[^/]+/recipients"),
)
"""The only routes that take a file: a recipients CSV, up to MAILRAMP_MAX_UPLOAD_BYTES."""

SMALL_ROUTES = re.compile(r"/signin(/.*)?|/signup|/api/v1/auth/.*|/api/v1/webhooks/.*|/t/.*")
"""Routes whose bodies are a few fields (sign-in, webhooks, unsubscribes): SMALL_BODY_BYTES."""
SMALL_BODY_BYTES = 64 * 1024

CREDENTIAL_COOKIES = ("mailramp_session", "__session")


class BodyLimit:
    """ASGI middleware: each route's largest body, decided from the route — never from the
    Content-Type the client claims — before anything is read. Uploads (UPLOAD_ROUTES) up to
    `max_upload_bytes`, and only with a credential (a session cookie or an Authorization
    header; checked properly by the route), so no one without an account can make the
    server read 100 MiB; sign-in, webhooks and tracking up to SMALL_BODY_BYTES; everything
    else up to `max_request_bytes`."""

    def __init__(self, app: ASGIApp, *, max_request_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes

    def limit_for(self, path: str) -> tuple[int, str]:
        """The largest body `path` accepts, and the setting that says so."""
        if any(route.fullmatch(path) for route in UPLOAD_ROUTES):
            return self.max_upload_bytes, "MAILRAMP_MAX_UPLOAD_BYTES"
        if SMALL_ROUTES.fullmatch(path):
            return min(SMALL_BODY_BYTES, self.max_request_bytes), "for this route"
        return self.max_request_bytes, "MAILRAMP_MAX_REQUEST_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit, setting = self.limit_for(scope["path"])
        declared = headers.get("content-length", "")
        refusal: tuple[int, str, str] | None = None
        if declared.isdigit() and int(declared) > limit:
            refusal = (413, "too_large", _too_large(limit, setting))
        elif limit > self.max_request_bytes and _has_body(headers) and not _has_credential(headers):
            refusal = (401, "unauthenticated", "not signed in")
        if refusal is not None:
            # Refused unread; the server closes the connection after answering.
            status, code, message = refusal
            body = {"error": {"code": code, "message": message}}
            await JSONResponse(body, status_code=status)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the app, where the HTTP error handler answers it.
                    raise BodyTooLarge(limit, setting)
            return message

        await self.app(scope, counted, send)


def _has_body(headers: Headers) -> bool:
    """Whether the request says a body follows (a page fetched with GET does not)."""
    declared = headers.get("content-length", "")
    return (declared.isdigit() and int(declared) > 0) or "transfer-encoding" in headers


def _has_credential(headers: Headers) -> bool:
    """Whether the request carries something that may sign it in (not whether it does)."""
    if headers.get("authorization"):
        return True
    cookies = headers.get("cookie", "")
    return any(f"{name}=" in cookies for name in CREDENTIAL_COOKIES)


def json_syntax_message(problem: dict[str, Any]) -> str | None:
    """For a body that is not JSON at all: what is wrong and where, instead of pydantic's
    bare 'JSON decode error' located at a character offset."""
    if problem.get("type") != "json_invalid":
        return None
    detail = str((problem.get("ctx") or {}).get("error") or "JSON decode error")
    location = problem.get("loc", ())
    if len(location) > 1:  # ("body", offset); the decoder's own words may end in "at"
        detail = f"{detail.removesuffix(' at')} at character {location[-1]}"
    return f"body: not valid JSON ({detail})"


def unparsable_body_message(error: HTTPException) -> str | None:
    """For the 400 FastAPI answers when parsing the body fails for a reason other than bad
    syntax: which limit the JSON broke."""
    cause = error.__cause__
    if error.status_code != 400 or cause is None:
        return None
    if isinstance(cause, RecursionError):
        return "body: the JSON is nested too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return f"body: not valid JSON (not UTF-8: byte 0x{cause.object[cause.start]:02x})"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return "body: a number in the JSON has more than 4,300 digits"
    return None
