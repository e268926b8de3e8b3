"""Delivering webhook messages over HTTP(S): the URL's host is resolved and checked once per
attempt (loopback, private and link-local addresses refused unless the operator allows
them), and the connection goes to the address that was checked — a name that resolves to
something else a moment later (DNS rebinding) cannot move it. TLS is still verified against
the host name. Redirects are not followed: a 3xx is a failed attempt."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import httpx

from mailramp.errors import HostError
from mailramp.kit.network import IPAddress, resolve_host
from mailramp.webhooks.models import ATTEMPT_TIMEOUT_SECONDS
from mailramp.webhooks.repository import Delivery

USER_AGENT = "mailramp-webhooks"
RESOLVED_FOR = 60.0  # seconds a host's checked address is used before it is resolved again


class HttpWebhookPoster:
    """One connection pool for every endpoint; each POST bounded by ATTEMPT_TIMEOUT_SECONDS."""

    def __init__(self, *, allow_private_hosts: bool = False) -> None:
        self._allow_private = allow_private_hosts
        self._resolved: dict[tuple[str, int], tuple[IPAddress, float]] = {}
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(ATTEMPT_TIMEOUT_SECONDS),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            headers={"user-agent": USER_AGENT},
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Delivery:
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            address = await self._address(host, port)
        except HostError as error:
            return Delivery(None, error.message, took())
        shown = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
        pinned = urlunsplit((parts.scheme, f"{shown}:{port}", parts.path or "/", parts.query, ""))
        netloc = parts.netloc.rsplit("@", 1)[-1]
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        try:
            response = await self._client.post(
                pinned,
                content=body,
                headers={**headers, "host": netloc},
                extensions=extensions,
            )
        except httpx.TimeoutException:
            return Delivery(None, f"no answer within {ATTEMPT_TIMEOUT_SECONDS:.0f} s", took())
        except httpx.HTTPError as error:
            return Delivery(None, f"{type(error).__name__}: {error}"[:300], took())
        latency = took()
        await response.aclose()
        problem = None if response.is_success else f"HTTP {response.status_code}"
        return Delivery(response.status_code, problem, latency)

    async def _address(self, host: str, port: int) -> IPAddress:
        """The address to connect to: resolved and checked, then kept for RESOLVED_FOR
        (what is kept is the checked address, so a name that changes meanwhile cannot
        move the connection)."""
        now = time.monotonic()
        kept = self._resolved.get((host, port))
        if kept is not None and kept[1] > now:
            return kept[0]
        target = await resolve_host(host, port, allow_private=self._allow_private)
        self._resolved[(host, port)] = (target.addresses[0], now + RESOLVED_FOR)
        return target.addresses[0]

    async def close(self) -> None:
        await self._client.aclose()
