"""The public tracking endpoints: `/t/o` (pixel), `/t/c` (click), `/t/u` (unsubscribe).

No login: the signed token is the authority, and it names one email only. Everything a
request carries is untrusted; pages escape all they show. A bad token gets a plain 404
page and records nothing (the pixel still answers with a GIF, so mail clients show nothing
broken).
"""

from __future__ import annotations

import base64
import html
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailramp.runtime import Runtime
from mailramp.tracking.classify import Visitor
from mailramp.tracking.service import UnsubscribeTarget

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
    "Pragma": "no-cache",
    "Expires": "0",
}

router = APIRouter(prefix="/t", include_in_schema=False)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


def _visitor(request: Request) -> Visitor:
    return Visitor(
        user_agent=request.headers.get("user-agent"),
        ip=request.client.host if request.client else None,
        method=request.method,
    )


def page_of(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        '<link rel="stylesheet" href="/static/app.css"></head>'
        f'<body><main><div class="card narrow"><h1>{html.escape(title)}</h1>{body}'
        "</div></main></body></html>"
    )
    return HTMLResponse(
        document, status_code=status, headers={**NO_CACHE, "X-Robots-Tag": "noindex"}
    )


def _not_found() -> HTMLResponse:
    return page_of("Link not valid", "<p>This link is not valid or has expired.</p>", 404)


def _sender(target: UnsubscribeTarget) -> str:
    return html.escape(target.campaign.campaign_name)


@router.api_route("/o/{token}", methods=["GET", "HEAD"])
async def open_pixel(token: str, request: Request, runtime: RuntimeDep) -> Response:
    """A 1x1 GIF; a valid token logs an open."""
    await runtime.tracking.open(token, _visitor(request))
    return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)


@router.get("/a/{token}")
async def answer_pixel(token: str, request: Request, runtime: RuntimeDep) -> Response:
    """A 1x1 GIF; a valid token notes an open of a tracked answer."""
    await runtime.tracking.answer_open(token, _visitor(request))
    return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)


@router.api_route("/c/{token}", methods=["GET", "HEAD"])
async def click(token: str, request: Request, runtime: RuntimeDep) -> Response:
    """Redirect to the link of the stored message the token names."""
    url = await runtime.tracking.click(token, _visitor(request))
    if url is None:
        return _not_found()
    return RedirectResponse(url, status_code=302, headers=NO_CACHE)


@router.api_route("/u/{token}", methods=["GET", "HEAD"])
async def unsubscribe_page(token: str, request: Request, runtime: RuntimeDep) -> Response:
    """Ask for confirmation; changes nothing (mail scanners follow GET links), but the fetch
    is logged: a scanner fetches it with the message's other links."""
    target = await runtime.tracking.unsubscribe_page(token, _visitor(request))
    if target is None:
        return _not_found()
    email = html.escape(target.record.recipient_email)
    if target.already:
        return page_of("You are unsubscribed", f"<p>{email} will not get these emails again.</p>")
    return page_of(
        "Unsubscribe?",
        f"<p>Stop emails like “{_sender(target)}” to <strong>{email}</strong>?</p>"
        '<form method=post><input type=hidden name="List-Unsubscribe" value="One-Click">'
        "<button type=submit>Unsubscribe</button></form>",
    )


@router.post("/u/{token}")
async def unsubscribe(token: str, request: Request, runtime: RuntimeDep) -> Response:
    """Unsubscribe (RFC 8058 one-click POST, or the confirmation form); idempotent."""
    target = await runtime.tracking.unsubscribe(token, _visitor(request))
    if target is None:
        return _not_found()
    email = html.escape(target.record.recipient_email)
    return page_of("You are unsubscribed", f"<p>{email} will not get these emails again.</p>")


@router.get("/tracking-domain")
async def tracking_domain_known(runtime: RuntimeDep, domain: str = "") -> Response:
    """200 when `domain` is a mailbox's verified tracking domain, else 404: the question a
    reverse proxy with on-demand TLS (Caddy's `ask`) puts before getting a certificate for
    a name, so it never gets one for a name nobody here uses."""
    known = bool(domain) and await runtime.mailboxes.serves_tracking_domain(domain[:253])
    return Response(
        "yes\n" if known else "no\n", status_code=200 if known else 404, media_type="text/plain"
    )
