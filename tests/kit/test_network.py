"""Connecting to a resolved host: the first address that accepts wins, and when none does
the error names every address tried and why."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest

from mailramp.kit.network import (
    ResolvedHost,
    connect,
    connect_blocking,
    unreachable_for_recipients,
)
from tests.support.postgres import free_port

PRIVATE = "is a private address, not reachable from the internet"
REFUSED = f"[Errno {errno.ECONNREFUSED}]"  # nothing listens on the port


def _host(*ports: int) -> ResolvedHost:
    """localhost as a resolver would give it, one endpoint per port (each its own address
    so that the error can tell them apart: 127.0.0.2, 127.0.0.3, ...)."""
    endpoints = tuple(
        (socket.AF_INET, (f"127.0.0.{n}", port)) for n, port in enumerate(ports, start=2)
    )
    return ResolvedHost(name="mail.example.test", port=ports[-1], endpoints=endpoints)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.3", 0))
    yield server
    server.close()


async def test_the_first_address_that_accepts_is_used(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    closed = free_port()
    target = ResolvedHost(
        name="mail.example.test",
        port=port,
        endpoints=((socket.AF_INET, ("127.0.0.2", closed)), (socket.AF_INET, ("127.0.0.3", port))),
    )
    sock = await connect(target, seconds_per_address=5)
    try:
        assert sock.getpeername() == ("127.0.0.3", port)
        assert sock.getblocking() is False
    finally:
        sock.close()
    sock = connect_blocking(target, timeout=5)
    try:
        assert sock.getpeername() == ("127.0.0.3", port)
        assert sock.gettimeout() == 5
    finally:
        sock.close()


async def test_when_no_address_accepts_the_error_names_each() -> None:
    target = _host(free_port(), free_port())
    expected = (
        rf"^cannot connect to mail\.example\.test:{target.port} "
        r"\(127\.0\.0\.2: .+; 127\.0\.0\.3: .+\)$"
    )
    with pytest.raises(OSError, match=expected) as raised:
        await connect(target, seconds_per_address=5)
    assert str(raised.value).count(REFUSED) == 2
    with pytest.raises(OSError, match=expected) as raised_blocking:
        connect_blocking(target, timeout=5)
    assert str(raised_blocking.value).count(REFUSED) == 2


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1 is this machine's own address"),
        ("http://localhost:8000", "localhost is a name only this machine or network knows"),
        ("http://[::1]:8000", "::1 is this machine's own address"),
        ("https://10.0.0.5", f"10.0.0.5 {PRIVATE}"),
        ("https://mailramp.local", "mailramp.local is a name only this machine or network knows"),
        ("https://track.acme.com", None),
        ("https://203.0.113.10", f"203.0.113.10 {PRIVATE}"),
        ("https://8.8.8.8", None),
    ],
)
def test_a_base_url_people_cannot_open_is_told_apart(url: str, why: str | None) -> None:
    assert unreachable_for_recipients(url) == why
