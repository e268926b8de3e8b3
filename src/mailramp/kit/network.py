"""Where user-given hosts may point: not at this machine or private networks, unless the
operator allows it (MAILRAMP_ALLOW_PRIVATE_HOSTS)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket


class ForbiddenHostError(Exception):
    """The host resolves to an address outbound connections must not reach."""


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


async def check_public_host(host: str, port: int, *, allow_private: bool) -> None:
    """Resolve `host` and refuse it if any address is loopback, private or link-local."""
    if allow_private:
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ForbiddenHostError(f"cannot resolve {host!r}: {error.strerror}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if _forbidden(address):
            raise ForbiddenHostError(
                f"{host!r} resolves to {address}, a loopback, private or link-local address; "
                "set MAILRAMP_ALLOW_PRIVATE_HOSTS=true if this server is yours"
            )
