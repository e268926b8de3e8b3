"""Asking DNS what a name is: its chain of aliases (CNAME) and its addresses.

One resolver for every lookup mailramp makes about a user's domain (a custom tracking
domain today). It asks the machine's resolver, or the servers the operator names
(MAILRAMP_DNS_SERVERS, `host` or `host:port`), which is also how tests point it at a DNS
server on loopback instead of the internet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.resolver

MAX_ALIASES = 8
"""How many CNAME hops are followed before a chain counts as a loop."""


class DnsError(Exception):
    """A lookup that gave no answer about the name."""


class DnsNameMissing(DnsError):
    """The name does not exist (NXDOMAIN): an answer, and a final one."""


class DnsUnavailable(DnsError):
    """No server answered in time, or every one failed: nothing is known about the name."""


@dataclass(frozen=True)
class Resolution:
    """What DNS says about a name: the aliases it leads through, in order (lower case, no
    final dot), and the IPv4 and IPv6 addresses at the end of them."""

    aliases: tuple[str, ...]
    addresses: frozenset[str]


def parse_servers(value: str | None) -> list[tuple[str, int]]:
    """`MAILRAMP_DNS_SERVERS` as (address, port) pairs: comma-separated `ip`, `ip:port` or
    `[ipv6]:port`. ValueError names the entry that is not one."""
    servers = []
    for entry in (part.strip() for part in (value or "").split(",")):
        if not entry:
            continue
        host, port = entry, "53"
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            port = rest.removeprefix(":") or "53"
        elif entry.count(":") == 1:
            host, port = entry.split(":")
        try:
            ipaddress.ip_address(host)
            number = int(port)
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address with an optional :port") from None
        if not 0 < number < 65536:
            raise ValueError(f"{entry!r}: the port must be 1-65535")
        servers.append((host, number))
    return servers


def normal_name(name: str) -> str:
    """A host name as DNS compares it: lower case, no final dot."""
    return name.strip().rstrip(".").lower()


class DnsResolver:
    """Lookups through the system's resolver, or through the given servers only."""

    def __init__(self, servers: Sequence[tuple[str, int]] = (), *, timeout: float = 5.0) -> None:
        resolver = dns.asyncresolver.Resolver(configure=not servers)
        if servers:
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(address, port) for address, port in servers
            ]
        resolver.lifetime = timeout
        self._resolver = resolver

    async def resolve(self, name: str) -> Resolution:
        """The name's aliases and addresses. DnsNameMissing when the name does not exist;
        DnsUnavailable when DNS did not answer."""
        aliases: list[str] = []
        current = normal_name(name)
        for _ in range(MAX_ALIASES):
            try:
                answer = await self._resolver.resolve(current, "CNAME", search=False)
            except dns.resolver.NoAnswer:
                break
            except dns.resolver.NXDOMAIN:
                raise DnsNameMissing(current) from None
            except (dns.resolver.NoNameservers, dns.exception.Timeout) as error:
                raise DnsUnavailable(_reason(error)) from None
            current = normal_name(answer[0].target.to_text())
            aliases.append(current)
        addresses: set[str] = set()
        for kind in ("A", "AAAA"):
            try:
                found = await self._resolver.resolve(current, kind, search=False)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except (dns.resolver.NoNameservers, dns.exception.Timeout) as error:
                raise DnsUnavailable(_reason(error)) from None
            addresses.update(record.address for record in found)
        return Resolution(tuple(aliases), frozenset(addresses))


def _reason(error: Exception) -> str:
    if isinstance(error, dns.exception.Timeout):
        return "no DNS server answered in time"
    return "every DNS server failed to answer"
