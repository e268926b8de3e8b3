"""HTTP methods as RFC 9110 says: a `405` names in `Allow` every method the path takes (not
only those of the one route the router tried), `OPTIONS` answers `204` with that list, and
`HEAD` is `GET` without the body wherever `GET` is served and no route takes `HEAD` itself.

A path a route names literally is that route's alone: `PATCH /api/v1/webhooks/clerk` is
refused with 405, not taken by `PATCH /api/v1/webhooks/{endpoint_id}` as an id "clerk"."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBED = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def literal_methods(routes: list[BaseRoute]) -> dict[str, set[str]]:
    """The methods of each path a route names without parameters."""
    literal: dict[str, set[str]] = {}
    for route in routes:
        if isinstance(route, Route) and not route.param_convertors and route.methods:
            literal.setdefault(route.path, set()).update(route.methods)
    return literal


def served_methods(scope: Scope, literal: dict[str, set[str]]) -> set[str]:
    """The methods a route of the app takes at the request's path, as declared (`literal`:
    the methods of the paths routes name without parameters)."""
    if scope["path"] in literal:
        return set(literal[scope["path"]])
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


def allowed_methods(scope: Scope, literal: dict[str, set[str]]) -> list[str]:
    """The methods the app answers at the request's path: those served, `HEAD` wherever
    `GET` is, and `OPTIONS` (empty: the path is not served)."""
    allowed = served_methods(scope, literal)
    if "GET" in allowed:
        allowed.add("HEAD")
    if allowed:
        allowed.add("OPTIONS")
    return sorted(allowed)


class HttpMethods:
    """ASGI middleware: `Allow` on 405, `OPTIONS`, and `HEAD` as `GET` without a body. A
    request of any other method costs nothing more unless it is refused with 405."""

    def __init__(self, app: ASGIApp, *, literal: dict[str, set[str]]) -> None:
        self.app = app
        self.literal = literal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "OPTIONS":
            allowed = allowed_methods(scope, self.literal)
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
            served = served_methods(scope, self.literal)
            if "HEAD" not in served and "GET" in served:
                await self.app({**scope, "method": "GET"}, receive, _without_body(send))
                return
        literal = self.literal.get(scope["path"])
        if literal is not None and method not in literal:
            refusal = JSONResponse(
                {"error": {"code": "method_not_allowed", "message": "Method Not Allowed"}},
                status_code=405,
                headers={"Allow": ", ".join(allowed_methods(scope, self.literal))},
            )
            await refusal(scope, receive, send)
            return
        # As it arrived: routing rewrites the scope (a mount's root path) on the way in.
        await self.app(scope, receive, _allow_on_405(dict(scope), send, self.literal))


def _without_body(send: Send) -> Send:
    async def head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return head


def _allow_on_405(scope: Scope, send: Send, literal: dict[str, set[str]]) -> Send:
    async def named(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 405:
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
            allow = ", ".join(allowed_methods(scope, literal)).encode()
            message = {**message, "headers": [*headers, (b"allow", allow)]}
        await send(message)

    return named
