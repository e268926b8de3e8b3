"""Cross-origin protection: a browser never sends a state-changing request to mailramp from
another site's page.

Session cookies already need the CSRF token on every authenticated write, but the requests
that *start* a session — sign-in and sign-up — have no session yet: a page on another site
could post the attacker's login and sign the victim's browser in as the attacker ("login
CSRF"). So every unsafe request a browser sends is checked here, before it is read:

- `Sec-Fetch-Site` (every current browser sends it) must be `same-origin` or `none` (typed
  by the user); `same-site` and `cross-site` are refused unless `Origin` is allowed;
- without it, an `Origin` header, if present, must be this server's (its public URL, the
  Host it was reached at, or a Clerk authorized party).

Requests with neither header do not come from a browser page (scripts, curl) and carry no
ambient credential a third party could borrow. Exempt: requests with an `Authorization`
header (a bearer credential is never sent by a browser on its own), Svix webhooks
(server to server) and the tracking endpoints (a mail client's one-click unsubscribe).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EXEMPT_PREFIXES = ("/t/", "/api/v1/webhooks/")


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lowercased; empty if it has none."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def trusted_origins(public_base_url: str, authorized_parties: str | None) -> frozenset[str]:
    """The origins whose pages may write: this server's public one and Clerk's parties."""
    urls: Iterable[str] = [public_base_url, *(authorized_parties or "").split(",")]
    return frozenset(origin for origin in map(origin_of, urls) if origin)


def from_another_site(headers: Headers, scheme: str, trusted: frozenset[str]) -> bool:
    """Whether a browser sent this request from a page that is not ours."""
    origin = origin_of(headers.get("origin", ""))
    host = headers.get("host", "").lower()
    ours = trusted | ({f"{scheme}://{host}"} if host else set())
    if origin and origin in ours:
        return False
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    return bool(headers.get("origin"))  # an Origin that is not ours (or "null")


class CrossOriginGuard:
    """ASGI middleware: unsafe requests from another site's page get 403, unread."""

    def __init__(self, app: ASGIApp, *, trusted: frozenset[str]) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            headers = Headers(scope=scope)
            path: str = scope["path"]
            exempt = path.startswith(EXEMPT_PREFIXES) or "authorization" in headers
            if not exempt and from_another_site(headers, scope.get("scheme", "http"), self.trusted):
                body = {
                    "error": {
                        "code": "forbidden",
                        "message": "cross-origin request refused: this form or script is not "
                        "on mailramp's own pages",
                    }
                }
                await JSONResponse(body, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)
