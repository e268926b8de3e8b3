"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from mailramp import __version__
from mailramp.config import Settings
from mailramp.errors import MailrampError
from mailramp.runtime import Runtime, open_runtime
from mailramp.storage.sql.migrate import head_revision
from mailramp.tracking.endpoints import router as tracking_router


def get_runtime(request: Request) -> Runtime:
    """The runtime the app opened at start-up."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def create_app(settings: Settings | None = None) -> FastAPI:
    """A mailramp app; the database and keys are opened and checked at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await open_runtime(settings)
        app.state.runtime = runtime
        worker = runtime.worker() if runtime.settings.run_worker else None
        poller = runtime.inbox_poller() if runtime.settings.run_worker else None
        tasks = []
        if worker is not None and poller is not None:
            tasks = [
                asyncio.create_task(worker.run(), name="sending-worker"),
                asyncio.create_task(poller.run(), name="inbox-poller"),
            ]
        try:
            yield
        finally:
            if worker is not None and poller is not None:
                worker.stop()  # sends in flight finish; the rest is released
                poller.stop()
                await asyncio.gather(*tasks)
            await runtime.close()

    app = FastAPI(title="mailramp", version=__version__, lifespan=lifespan)

    app.include_router(tracking_router)

    @app.exception_handler(MailrampError)
    async def _domain_error(_request: Request, error: MailrampError) -> JSONResponse:
        return JSONResponse(status_code=error.status_code, content=error.to_dict())

    @app.get("/healthz", tags=["operations"])
    async def healthz(runtime: RuntimeDep) -> JSONResponse:
        """Liveness and the database the process is using; 503 if its schema is behind."""
        version = await runtime.store.schema_version()
        head = head_revision()
        body: dict[str, Any] = {
            "status": "ok" if version == head else "schema_out_of_date",
            "version": __version__,
            "database": {
                "backend": runtime.store.backend,
                "schema_version": version,
                "schema_head": head,
                "up_to_date": version == head,
            },
        }
        return JSONResponse(status_code=200 if version == head else 503, content=body)

    return app
