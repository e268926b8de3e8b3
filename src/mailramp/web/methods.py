"""HTTP methods as RFC 9110 says: a `405` names in `Allow` every method the path takes (not
only those of the one route the router tried), `OPTIONS` answers `204` with that list, and
`HEAD` is `GET` without the body wherever `GET` is served and no route takes `HEAD` itself."""

from __future__ import annotations

from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBED = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def served_methods(scope: Scope) -> set[str]:
    """The methods a route of the app takes at the request's path, as declared."""
    router = scope["app"].router
    served: set[str] = set()
    for method in PROBED:
        probe = {**scope, "method": method}
        for route in router.routes:
            match, _ = route.matches(probe)
            if match is Match.FULL:
                # A mount (static files) takes every method and answers GET and HEAD.
                served |= {"GET", "HEAD"} if isinstance(route, Mount) else {method}
                break
    return served


def allowed_methods(scope: Scope) -> list[str]:
    """The methods the app answers at the request's path: those served, `HEAD` wherever
    `GET` is, and `OPTIONS` (empty: the path is not served)."""
    allowed = served_methods(scope)
    if "GET" in allowed:
        allowed.add("HEAD")
    if allowed:
        allowed.add("OPTIONS")
    return sorted(allowed)


class HttpMethods:
    """ASGI middleware: `Allow` on 405, `OPTIONS`, and `HEAD` as `GET` without a body. A
    request of any other method costs nothing more unless it is refused with 405."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "OPTIONS":
            allowed = allowed_methods(scope)
            if allowed:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": [(b"allow", ", ".join(allowed).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return
        if method == "HEAD":
            # A route that takes HEAD itself answers it (a tracking link: a scanner's
            # HEAD is not a click); elsewhere HEAD is GET without the body.
            served = served_methods(scope)
            if "HEAD" not in served and "GET" in served:
                await self.app({**scope, "method": "GET"}, receive, _without_body(send))
                return
        # As it arrived: routing rewrites the scope (a mount's root path) on the way in.
        await self.app(scope, receive, _allow_on_405(dict(scope), send))


def _without_body(send: Send) -> Send:
    async def head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return head


def _allow_on_405(scope: Scope, send: Send) -> Send:
    async def named(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 405:
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
            allow = ", ".join(allowed_methods(scope)).encode()
            message = {**message, "headers": [*headers, (b"allow", allow)]}
        await send(message)

    return named
