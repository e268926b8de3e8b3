"""HTTP as a browser sends it, for tests of answers a server gives before reading a body."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterable
from typing import Any


def raw_post(
    port: int, path: str, headers: dict[str, str], chunks: Iterable[bytes], *, chunked: bool
) -> tuple[int, dict[str, Any], int]:
    """POST as a browser does: the body is sent while the answer is read, so an answer the
    server gives before reading the body (and the connection it closes) is seen."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=60)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    sent = 0

    def send() -> None:
        nonlocal sent
        try:
            connection.sendall(head)
            for chunk in chunks:
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                sent += len(chunk)
            if chunked:
                connection.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed the connection: what is being tested

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(connection)
        response.begin()
        body = json.loads(response.read() or b"{}")
        status = response.status
    finally:
        # Shut down first: it wakes the sender if it is blocked in sendall.
        connection.shutdown(socket.SHUT_RDWR)
        connection.close()
        sender.join()
    return status, body, sent
