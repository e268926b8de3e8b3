"""Where user-given hosts may point, and connecting to exactly the addresses checked.

Mailbox SMTP and IMAP hosts are chosen by users, so a connection to one could reach this
machine or the operator's private network. `resolve_host` resolves a host once and refuses
it if any of its addresses is not public (loopback, private, link-local, shared, multicast,
reserved or unspecified, also when wrapped in an IPv6 address), unless the operator allows
private hosts (MAILRAMP_ALLOW_PRIVATE_HOSTS). Clients then connect to those very addresses
(`connect`, `connect_blocking`) and never resolve the name again: a DNS server that answers
differently the second time (DNS rebinding) cannot send them elsewhere. The name itself is
kept for TLS (SNI and the certificate's host name). What it raises is drawn in
`errors.py` (`HostError`)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mailramp.errors import (
    CleartextLoginError,
    ForbiddenHostError,
    HostLookupError,
    UnknownHostError,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# getaddrinfo's answers that mean "this name has no address" — for good, unlike EAI_AGAIN
# (no answer in time) or EAI_FAIL (the server failed), which say nothing about the name.
_NO_SUCH_HOST = {
    code
    for code in (
        socket.EAI_NONAME,
        getattr(socket, "EAI_NODATA", None),
        getattr(socket, "EAI_ADDRFAMILY", None),
    )
    if code is not None
}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped ::ffff:a.b.c.d, 6to4
    2002::/16, NAT64 64:ff9b::/96), which is where a connection to it ends up."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(address: IPAddress) -> bool:
    """Whether an address is on the public internet (global unicast)."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return is_public_address(inner)
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


_LOCAL_NAMES = ("localhost", ".localhost", ".local", ".internal", ".lan", ".home.arpa")


def unreachable_for_recipients(url: str) -> str | None:
    """Why people elsewhere cannot open `url` (a public base URL), judged from its host
    as written (no lookup): a loopback, private or link-local address, or a local-only
    name. None when nothing says so."""
    host = (urlsplit(url).hostname or "").lower()
    if not host:
        return "it names no host"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith(_LOCAL_NAMES):
            return f"{host} is a name only this machine or network knows"
        return None
    if address.is_loopback:
        return f"{host} is this machine's own address"
    if not is_public_address(address):
        return f"{host} is a private address, not reachable from the internet"
    return None


@dataclass(frozen=True)
class ResolvedHost:
    """A host name and the addresses it resolved to (and was checked against), in the
    resolver's order. Connect to these, never to the name."""

    name: str
    port: int
    endpoints: tuple[tuple[int, tuple[Any, ...]], ...]
    """(address family, socket address) pairs, as getaddrinfo gave them."""

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        """The addresses, as ipaddress objects."""
        return tuple(ipaddress.ip_address(sockaddr[0]) for _, sockaddr in self.endpoints)

    @property
    def reaches_public(self) -> bool:
        """Whether a connection may end up on the public internet."""
        return any(is_public_address(address) for address in self.addresses)

    def __str__(self) -> str:
        shown = ", ".join(str(address) for address in self.addresses)
        return f"{self.name}:{self.port} ({shown})"


async def resolve_host(host: str, port: int, *, allow_private: bool) -> ResolvedHost:
    """Resolve `host` once; refuse it (ForbiddenHostError) if any address is not public,
    unless `allow_private`. Raises UnknownHostError or HostLookupError when it does not
    resolve, telling a name that does not exist from a resolver that failed."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        if error.errno in _NO_SUCH_HOST:
            raise UnknownHostError(
                f"the host {host!r} does not exist (DNS: {error.strerror})"
            ) from None
        raise HostLookupError(
            f"cannot resolve {host!r} right now (DNS: {error.strerror})"
        ) from None
    except UnicodeError:  # a label IDNA cannot encode (too long, forbidden characters)
        raise UnknownHostError(f"{host!r} is not a valid host name") from None
    endpoints: list[tuple[int, tuple[Any, ...]]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and (family, sockaddr) not in endpoints:
            endpoints.append((family, tuple(sockaddr)))
    if not endpoints:
        raise UnknownHostError(f"the host {host!r} has no IPv4 or IPv6 address")
    resolved = ResolvedHost(name=host, port=port, endpoints=tuple(endpoints))
    if not allow_private:
        for address in resolved.addresses:
            if not is_public_address(address):
                inner = embedded_ipv4(address)
                shown = f"{address} ({inner})" if inner is not None else str(address)
                raise ForbiddenHostError(
                    f"{host!r} resolves to {shown}, a loopback, private, link-local or "
                    "otherwise non-public address; set MAILRAMP_ALLOW_PRIVATE_HOSTS=true if "
                    "this server is yours"
                )
    return resolved


def check_cleartext_login(target: ResolvedHost, *, allowed: bool) -> None:
    """Refuse to log in without TLS to a host that may be on the public internet, unless the
    operator allowed it (MAILRAMP_ALLOW_CLEARTEXT_LOGIN)."""
    if target.reaches_public and not allowed:
        raise CleartextLoginError(
            f"refusing to send the password to {target.name!r} unencrypted: the mailbox's "
            "transport is `plain` and the host is on the public internet; use `starttls` or "
            "`tls` (or set MAILRAMP_ALLOW_CLEARTEXT_LOGIN=true)"
        )


async def connect(target: ResolvedHost, *, seconds_per_address: float | None) -> socket.socket:
    """A connected, non-blocking TCP socket to the first of the target's addresses that
    accepts, each given `seconds_per_address`; OSError naming them all if none does."""
    loop = asyncio.get_running_loop()
    attempts = _Attempts(target)
    for family, sockaddr in target.endpoints:
        with attempts.trying(sock := socket.socket(family, socket.SOCK_STREAM), sockaddr):
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, sockaddr), seconds_per_address)
            return sock
    raise attempts.failed()


def connect_blocking(target: ResolvedHost, *, timeout: float | None) -> socket.socket:
    """`connect` for code that runs in a thread: a blocking socket with `timeout` set."""
    attempts = _Attempts(target)
    for family, sockaddr in target.endpoints:
        with attempts.trying(sock := socket.socket(family, socket.SOCK_STREAM), sockaddr):
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
    raise attempts.failed()


class _Attempts:
    """The addresses of one target tried in turn: a socket that does not connect is closed
    and its error noted (a timeout is an OSError too); anything else closes it and goes on."""

    def __init__(self, target: ResolvedHost) -> None:
        self._target = target
        self._failures: list[str] = []

    @contextmanager
    def trying(self, sock: socket.socket, sockaddr: Any) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            sock.close()
            self._failures.append(f"{sockaddr[0]}: {str(error) or 'timed out'}")
        except BaseException:
            sock.close()
            raise

    def failed(self) -> OSError:
        """The error when no address accepted, naming each one's failure."""
        where = f"{self._target.name}:{self._target.port}"
        return OSError(f"cannot connect to {where} ({'; '.join(self._failures)})")
