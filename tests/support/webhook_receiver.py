"""A webhook receiver on loopback: a real HTTP server (uvicorn, in a thread of its own) that
records every request it gets and answers the status it is told to. It can go down —
the port closed, connections refused — and come back on the same port."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn

from tests.support.postgres import free_port


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """`received` in arrival order; `status` is what the next request gets answered."""

    def __init__(self, *, status: int = 200) -> None:
        self.port = free_port()
        self.status = status
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            part = await receive()
            body += part.get("body", b"")
            if not part.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        status = self.status
        with self._lock:
            self.received.append(Received(scope["path"], headers, body))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def start(self) -> WebhookReceiver:
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            log_level="error",
            lifespan="off",
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the webhook receiver did not start on {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Close the port: from now on connections are refused."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def take(self) -> list[Received]:
        """What arrived so far (and forget it)."""
        with self._lock:
            taken, self.received = self.received, []
        return taken
