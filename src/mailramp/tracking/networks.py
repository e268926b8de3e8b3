"""The networks that mail-privacy proxies and security gateways publish: a request from one
of them is a machine's, whatever its user agent says.

The list is data (`networks.toml` beside this module: each network with who runs it, what
it does, where its ranges were published and when). An operator can use a copy of their
own in the same format (`MAILRAMP_KNOWN_NETWORKS_FILE`), refreshed from the sources it
names; a file that cannot be read is refused at start-up with the entry and the value that
are wrong, never half-used.
"""

from __future__ import annotations

import functools
import ipaddress
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

from mailramp.errors import ConfigurationError

SHIPPED = Path(__file__).with_name("networks.toml")
MAX_IPV4_PREFIX = 8
"""The widest IPv4 range a file may hold: a /7 or wider is a typo, not a gateway."""
MAX_IPV6_PREFIX = 19


class NetworkKind(StrEnum):
    """What a network's machines do with a message."""

    IMAGE_PROXY = "image_proxy"  # fetch its images (the open pixel) for a mail reader
    LINK_SCANNER = "link_scanner"  # follow its links for a security gateway or sandbox


@dataclass(frozen=True)
class Network:
    """One operator's published ranges, as the file describes them."""

    name: str
    operator: str
    kind: NetworkKind
    source: str
    as_of: date


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class KnownNetworks:
    """Which known network, if any, an address belongs to (the narrowest range wins)."""

    def __init__(self, ranges: Sequence[tuple[IpNetwork, Network]], *, version: date) -> None:
        self.version = version
        self.networks = tuple(dict.fromkeys(network for _, network in ranges))
        self.ranges = len(ranges)
        self._counts: dict[str, int] = {}
        for _, network in ranges:
            self._counts[network.operator] = self._counts.get(network.operator, 0) + 1
        # By address family, then prefix length (longest first): one dict lookup per length.
        self._by_prefix: dict[int, list[tuple[int, dict[int, Network]]]] = {4: [], 6: []}
        grouped: dict[tuple[int, int], dict[int, Network]] = {}
        for block, network in ranges:
            key = (block.version, block.prefixlen)
            grouped.setdefault(key, {})[int(block.network_address)] = network
        for (family, prefix), blocks in sorted(grouped.items(), key=lambda item: -item[0][1]):
            self._by_prefix[family].append((prefix, blocks))

    def count(self, network: Network) -> int:
        """How many ranges the list holds for `network`."""
        return self._counts.get(network.operator, 0)

    def find(self, address: str | None) -> Network | None:
        """The network `address` is in; None for an unknown or unparsable address."""
        if not address:
            return None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        bits = ip.max_prefixlen
        value = int(ip)
        for prefix, blocks in self._by_prefix[ip.version]:
            network = blocks.get(value >> (bits - prefix) << (bits - prefix))
            if network is not None:
                return network
        return None

    @classmethod
    def load(cls, path: Path | None = None) -> KnownNetworks:
        """The networks of `path` (the shipped file if None); ConfigurationError naming the
        file, the entry and the value when it is not a valid list."""
        if path is None:
            return shipped()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigurationError(
                f"known networks file {path}: cannot be read ({error.strerror})"
            ) from error
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigurationError(f"known networks file {path}: not TOML ({error})") from error
        return parse(data, origin=str(path))


@functools.cache
def shipped() -> KnownNetworks:
    """The list mailramp ships (read once per process)."""
    return KnownNetworks.load(SHIPPED)


def _field(entry: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    value = entry.get(name)
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise ConfigurationError(f"{where}: `{name}` must be a {kind.__name__}, got {value!r}")
    return value


def parse(data: Mapping[str, Any], *, origin: str) -> KnownNetworks:
    """The networks a parsed file holds (see `KnownNetworks.load`)."""
    version = data.get("version")
    if not isinstance(version, date):
        raise ConfigurationError(f"{origin}: `version` must be a date, got {version!r}")
    entries = data.get("network")
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(f"{origin}: no [[network]] entries")
    ranges: list[tuple[IpNetwork, Network]] = []
    operators: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"{origin}: network {number}"
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where}: not a table")
        operator = _field(entry, "operator", str, where)
        if operator in operators:
            raise ConfigurationError(f"{where}: operator {operator!r} appears twice")
        operators.add(operator)
        kind = _field(entry, "kind", str, where)
        if kind not in set(NetworkKind):
            allowed = ", ".join(NetworkKind)
            raise ConfigurationError(f"{where}: `kind` must be one of {allowed}, got {kind!r}")
        network = Network(
            name=_field(entry, "name", str, where),
            operator=operator,
            kind=NetworkKind(kind),
            source=_field(entry, "source", str, where),
            as_of=_field(entry, "as_of", date, where),
        )
        blocks = _field(entry, "ranges", list, where)
        if not blocks:
            raise ConfigurationError(f"{where}: `ranges` is empty")
        for text in blocks:
            ranges.append((_block(text, where), network))
    return KnownNetworks(ranges, version=version)


def _block(text: object, where: str) -> IpNetwork:
    try:
        block = ipaddress.ip_network(str(text), strict=True)
    except ValueError as error:
        raise ConfigurationError(f"{where}: range {text!r} is not a network ({error})") from None
    widest = MAX_IPV4_PREFIX if block.version == 4 else MAX_IPV6_PREFIX
    if block.prefixlen < widest:
        raise ConfigurationError(
            f"{where}: range {text!r} is wider than /{widest}: no gateway publishes that"
        )
    return block
