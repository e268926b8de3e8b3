"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from mailramp import __version__
from mailramp.config import Settings
from mailramp.errors import BusyError, MailrampError, TooManyAttemptsError
from mailramp.kit.network import unreachable_for_recipients
from mailramp.observability import install_log_redaction
from mailramp.runtime import Runtime, open_runtime
from mailramp.web import api_docs, openapi
from mailramp.web.account import api as account_api
from mailramp.web.account import pages as account_pages
from mailramp.web.account import webhooks as account_webhooks
from mailramp.web.admin import api as admin_api
from mailramp.web.admin import pages as admin_pages
from mailramp.web.campaigns import api as campaigns_api
from mailramp.web.campaigns import pages as campaigns_pages
from mailramp.web.contract import body_as_documented
from mailramp.web.conversations import api as conversations_api
from mailramp.web.conversations import pages as conversations_pages
from mailramp.web.dashboard import SignInRequired
from mailramp.web.deps import CONTENT_SECURITY_POLICY
from mailramp.web.health import ServiceHealth, health_report, metrics_response
from mailramp.web.legacy import api as legacy_api
from mailramp.web.limits import BodyLimit, json_syntax_message, unparsable_body_message
from mailramp.web.mailboxes import api as mailboxes_api
from mailramp.web.mailboxes import pages as mailboxes_pages
from mailramp.web.methods import HttpMethods, literal_methods
from mailramp.web.origin import CrossOriginGuard, trusted_origins
from mailramp.web.suppression import api as suppression_api
from mailramp.web.suppression import pages as suppression_pages
from mailramp.web.tracking import api as tracking_api
from mailramp.web.tracking import public as tracking_public
from mailramp.web.webhooks import api as webhooks_api
from mailramp.web.webhooks import pages as webhooks_pages

# One convention: each domain's JSON routes in web/<domain>/api.py, its dashboard pages in
# web/<domain>/pages.py, and what strangers reach (tracking links, webhooks) beside them.
ROUTERS = (
    tracking_public.router,
    api_docs.router,
    account_api.router,
    mailboxes_api.router,
    campaigns_api.router,
    conversations_api.router,
    webhooks_api.router,
    suppression_api.router,
    tracking_api.router,
    legacy_api.router,
    admin_api.router,
    account_webhooks.router,
    account_pages.router,
    mailboxes_pages.router,
    campaigns_pages.router,
    conversations_pages.router,
    suppression_pages.router,
    webhooks_pages.router,
    admin_pages.router,
)

log = logging.getLogger(__name__)


def get_runtime(request: Request) -> Runtime:
    """The runtime the app opened at start-up."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def create_app(settings: Settings | None = None) -> FastAPI:
    """A mailramp app; the database and keys are opened and checked at start-up. The access
    log's redaction is installed here too, so an app run by another ASGI server (not
    `mailramp serve`) keeps tokens, OAuth codes and full client addresses out of it."""
    install_log_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await open_runtime(settings)
        app.state.runtime = runtime
        unreachable = unreachable_for_recipients(runtime.settings.public_base_url)
        if unreachable:
            log.warning(
                "MAILRAMP_PUBLIC_BASE_URL is %s: %s. Tracking and unsubscribe links in email "
                "to real people will not open; set it to the address people reach this "
                "server at (fine while you try mailramp on this machine)",
                runtime.settings.public_base_url,
                unreachable,
            )
        worker = runtime.worker() if runtime.settings.run_worker else None
        poller = runtime.inbox_poller() if runtime.settings.run_worker else None
        upkeep = runtime.upkeep() if runtime.settings.run_worker else []
        tasks = []
        if worker is not None and poller is not None:
            tasks = [
                asyncio.create_task(worker.run(), name="sending-worker"),
                asyncio.create_task(poller.run(), name="inbox-poller"),
                *(asyncio.create_task(job.run(), name=job.name) for job in upkeep),
            ]
        try:
            yield
        finally:
            if worker is not None and poller is not None:
                worker.stop()  # sends in flight finish; the rest is released
                poller.stop()
                for job in upkeep:
                    job.stop()
                await asyncio.gather(*tasks)
            await runtime.close()

    # /docs is ours (web/api_docs.py): FastAPI's own page loads Swagger UI from a CDN.
    app = FastAPI(
        title="mailramp",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,
    )
    api_routes = [
        route
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
    ]
    app.openapi = partial(openapi.document, app, api_routes)  # type: ignore[method-assign]

    for router in ROUTERS:  # a JSON body's types are the document's (web/contract.py)
        app.include_router(router, dependencies=[Depends(body_as_documented)])
    app.mount(api_docs.ASSETS_PATH, StaticFiles(directory=api_docs.assets_directory()))
    app.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")), name="static")
    limits = settings or Settings()
    app.add_middleware(
        BodyLimit,
        max_request_bytes=limits.max_request_bytes,
        max_upload_bytes=limits.max_upload_bytes,
    )
    app.add_middleware(
        CrossOriginGuard,
        trusted=trusted_origins(limits.public_base_url, limits.clerk_authorized_parties),
    )
    app.add_middleware(
        HttpMethods, literal=literal_methods([r for router in ROUTERS for r in router.routes])
    )

    @app.middleware("http")
    async def _security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        # Scripts and styles only from this server: no inline code, no CDN.
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.exception_handler(SignInRequired)
    async def _sign_in(_request: Request, _error: SignInRequired) -> RedirectResponse:
        return RedirectResponse("/signin", status_code=303)

    # One error shape everywhere: {"error": {"code", "message", "field"?}}.
    @app.exception_handler(MailrampError)
    async def _domain_error(_request: Request, error: MailrampError) -> JSONResponse:
        headers = {}
        if isinstance(error, BusyError | TooManyAttemptsError):
            headers["Retry-After"] = str(error.retry_after_seconds)
        return JSONResponse(
            status_code=error.status_code, content={"error": error.to_dict()}, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problem = error.errors()[0]
        location = [
            str(part) for part in problem.get("loc", ()) if part not in ("body", "query", "path")
        ]
        field = ".".join(location) or "body"
        message = str(problem.get("msg", "invalid")).removeprefix("Value error, ")
        body = {"code": "invalid", "message": f"{field}: {message}", "field": field}
        if syntax := json_syntax_message(problem):
            body = {"code": "invalid", "message": syntax, "field": "body"}
        return JSONResponse(status_code=422, content={"error": body})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            error.status_code, "http_error"
        )
        body = {"code": code, "message": str(error.detail)}
        if unparsable := unparsable_body_message(error):
            body = {"code": "invalid", "message": unparsable, "field": "body"}
        return JSONResponse(
            status_code=error.status_code,
            content={"error": body},
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=error)
        body = {"code": "internal", "message": "internal error; the server log has the details"}
        # Starlette raises the error again after this answer, and uvicorn then closes the
        # connection: say so, or a client reusing it gets a reset instead of an answer.
        return JSONResponse(
            status_code=500, content={"error": body}, headers={"Connection": "close"}
        )

    @app.get(
        "/healthz",
        tags=["operations"],
        response_model=ServiceHealth,
        responses={503: {"model": ServiceHealth, "description": "Not able to serve."}},
    )
    async def healthz(runtime: RuntimeDep) -> JSONResponse:
        """Liveness and the database the process is using; 503 if its schema is behind or
        it does not answer."""
        status, body = await health_report(runtime)
        return JSONResponse(status_code=status, content=body)

    # Prometheus scrapes it; not part of the API, so not in the OpenAPI schema.
    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request, runtime: RuntimeDep) -> Response:
        """Prometheus metrics (text format); behind a bearer token if MAILRAMP_METRICS_TOKEN
        is set."""
        return await metrics_response(runtime, request)

    return app
