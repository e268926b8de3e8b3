"""The tracking benchmark's server: mailramp's app, plus a bare endpoint (a GIF, no database)
as the baseline on the same server, and `/bench/writes`: how many writing SQL statements
(INSERT, UPDATE, DELETE) the server has run so far.
`python -m bench.tracking_server DATABASE_URL PORT KEY`."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from fastapi.responses import JSONResponse, Response
from sqlalchemy import event
from sqlalchemy.engine import Engine

from mailramp.config import Settings
from mailramp.web.app import create_app
from mailramp.web.tracking.public import NO_CACHE, PIXEL

WRITES = {"statements": 0}


def _count(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
    if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
        WRITES["statements"] += 1


def main() -> None:
    database_url, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    settings = Settings(
        database_url=database_url,
        encryption_keys=key,
        run_worker=False,
        public_base_url=f"http://127.0.0.1:{port}",
        log_level="WARNING",
    )
    app = create_app(settings)

    async def bare() -> Response:
        return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)

    async def writes() -> JSONResponse:
        return JSONResponse(WRITES)

    event.listen(Engine, "before_cursor_execute", _count)  # every engine, sync or async
    app.add_api_route("/bench/bare", bare, methods=["GET"])
    app.add_api_route("/bench/writes", writes, methods=["GET"])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
