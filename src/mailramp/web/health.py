"""/healthz and /metrics over HTTP, for `mailramp serve` (web/app.py) and the worker's own
health server (`mailramp worker --health-port`): what a process says about itself and its
database. The metric objects and logging live in observability.py, below the runtime."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mailramp import __version__
from mailramp.errors import AuthenticationError, ConfigurationError, MailrampError
from mailramp.observability import DATABASE_TIMEOUT_SECONDS, describe_error
from mailramp.runtime import Runtime, schema_head, schema_is_newer

log = logging.getLogger(__name__)


class DatabaseHealth(BaseModel):
    """The database as the process sees it: which, whether it answers, and its schema
    against the one this code needs (`schema_head`)."""

    backend: str
    reachable: bool | None = None
    schema_version: str | None = None
    schema_head: str
    up_to_date: bool | None = None
    schema_newer: bool | None = None


HEALTH_STATUSES = {"ok": 200, "schema_out_of_date": 503, "database_unreachable": 503}
"""Each `/healthz` status and the HTTP status it is answered with (docs/observability.md's
table is checked against it: tests/test_operator_docs.py)."""


class ServiceHealth(BaseModel):
    """What `/healthz` answers: `ok` (200); `schema_out_of_date` or
    `database_unreachable` (503)."""

    status: Literal["ok", "schema_out_of_date", "database_unreachable"]
    version: str
    database: DatabaseHealth
    workers: dict[str, int] | None = Field(
        default=None,
        description="How many sending workers are alive, stopped, gone (silent for three "
        "leases); present when the schema is the one this code needs.",
    )


async def health_report(runtime: Runtime) -> tuple[int, dict[str, Any]]:
    """Liveness and the database the process is using, as (HTTP status, JSON body): 200 when
    the database answers with the newest schema, 503 when its schema is behind or it does
    not answer."""
    backend = runtime.backend
    head = schema_head(backend)
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS):
            version = await runtime.database_version()
    except Exception as error:
        log.warning("health: the database does not answer: %s", describe_error(error))
        body: dict[str, Any] = {
            "status": "database_unreachable",
            "version": __version__,
            "database": {"backend": backend, "reachable": False, "schema_head": head},
        }
        return HEALTH_STATUSES["database_unreachable"], body
    # A schema newer than this code is a rolling deploy under way: this process keeps
    # serving (200) and says so; a schema behind the code cannot serve it (503).
    newer = version != head and schema_is_newer(backend, version)
    healthy = version == head or newer
    body = {
        "status": "ok" if healthy else "schema_out_of_date",
        "version": __version__,
        "database": {
            "backend": backend,
            "schema_version": version,
            "schema_head": head,
            "up_to_date": version == head,
            "schema_newer": newer,
        },
    }
    if version == head:
        # The sending workers the database has heard from (`mailramp worker list` names
        # them): a worker count that drops to 0 alive is worth an alert.
        with contextlib.suppress(TimeoutError, MailrampError):
            async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS):
                body["workers"] = await runtime.workers.counts()
    return HEALTH_STATUSES[body["status"]], body


def _bearer_matches(authorization: str | None, token: str) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    # Constant-time comparison: the token must not leak through response timing.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


async def metrics_response(runtime: Runtime, request: Request) -> Response:
    """GET /metrics: the text exposition; with MAILRAMP_METRICS_TOKEN set, only for
    `Authorization: Bearer <token>`."""
    token = runtime.settings.metrics_token
    if token is not None and not _bearer_matches(
        request.headers.get("authorization"), token.get_secret_value()
    ):
        error = AuthenticationError("/metrics needs `Authorization: Bearer <metrics token>`")
        return JSONResponse(
            status_code=error.status_code,
            content={"error": error.to_dict()},
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    body = await runtime.metrics_exposition()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def health_app(runtime: Runtime) -> Starlette:
    """An ASGI app with only /healthz and /metrics, as `mailramp serve` answers them."""

    async def healthz(_request: Request) -> JSONResponse:
        status, body = await health_report(runtime)
        return JSONResponse(body, status_code=status)

    async def metrics(request: Request) -> Response:
        return await metrics_response(runtime, request)

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics)])


@dataclass(frozen=True)
class HealthServer:
    """Where a running health server listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """Its base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@asynccontextmanager
async def health_server(
    runtime: Runtime, *, host: str = "127.0.0.1", port: int
) -> AsyncIterator[HealthServer]:
    """Serve /healthz and /metrics of `runtime` on host:port while the block runs (port 0:
    any free port, see `.port`). Raises ConfigurationError if the port cannot be bound.

    Signals stay with the caller (the worker's SIGTERM handler): uvicorn's own handlers
    are not installed.
    """
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family)
    except OSError as error:
        raise ConfigurationError(
            f"the health server cannot listen on {host}:{port}: {error.strerror or error}"
        ) from None
    config = uvicorn.Config(
        health_app(runtime),
        lifespan="off",
        ws="none",
        log_config=None,  # log through the handlers configure_logging installed
        access_log=False,  # probes every few seconds would drown the worker's lines
        timeout_graceful_shutdown=5,
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    try:
        await server.startup(sockets=[listener])
    except BaseException:
        listener.close()
        raise
    bound = HealthServer(host=host, port=listener.getsockname()[1])
    log.info("health and metrics at %s/healthz and /metrics", bound.url)
    main_loop = asyncio.create_task(server.main_loop(), name="health-server")
    try:
        yield bound
    finally:
        server.should_exit = True
        await main_loop
        await server.shutdown(sockets=[listener])


async def serve_health(runtime: Runtime, *, host: str = "127.0.0.1", port: int) -> None:
    """Serve /healthz and /metrics of `runtime` until cancelled."""
    async with health_server(runtime, host=host, port=port):
        await asyncio.Event().wait()
