"""A webhook receiver for benchmarks: uvicorn on loopback, in its own process, answering 200
to every POST and printing how many it got when terminated (so its CPU does not compete
with the dispatcher being measured)."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import uvicorn

COUNT = [0]
LOCK = threading.Lock()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    with LOCK:
        COUNT[0] += 1
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def main() -> None:
    port = int(sys.argv[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="error", lifespan="off", interface="asgi3"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.01)
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.should_exit = True
    thread.join(timeout=10)
    print(COUNT[0], flush=True)


if __name__ == "__main__":
    main()
