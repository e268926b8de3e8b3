"""How often a password may be tried: per account (stored, so every process shares it) and
per client address (in this process's memory).

Per account, the first FREE_FAILURES attempts are free; after that each attempt must wait
twice as long as the one before, from 30 s up to MAX_LOCK. An attempt is counted *before*
its password is checked (AuthRepository.reserve_login_attempt), so guesses sent in parallel
cannot all pass one check of the count.

Per address, an attacker spreading guesses over many accounts is held to
ADDRESS_ATTEMPTS attempts per ADDRESS_WINDOW. IPv6 clients are counted by their /64, the
block one customer usually holds. Behind a reverse proxy the address is the client's only
when MAILRAMP_TRUSTED_PROXIES names the proxy (docs/security.md).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from datetime import datetime, timedelta

FREE_FAILURES = 5
MAX_LOCK = timedelta(minutes=15)
ADDRESS_ATTEMPTS = 30
ADDRESS_WINDOW = timedelta(minutes=10)


def account_locked_until(failures: int, last_attempt_at: datetime | None) -> datetime | None:
    """When the account may be tried again, or None if it may be tried now."""
    if failures < FREE_FAILURES or last_attempt_at is None:
        return None
    wait = min(timedelta(seconds=30 * 2 ** min(failures - FREE_FAILURES, 20)), MAX_LOCK)
    return last_attempt_at + wait


def address_key(address: str | None) -> str:
    """The unit an address is counted in: the address itself, or its /64 for IPv6."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class AddressThrottle:
    """Sign-in attempts per client address in a sliding window, in memory. Holds at most
    `max_addresses` addresses, forgetting the longest unseen first."""

    def __init__(
        self,
        *,
        attempts: int = ADDRESS_ATTEMPTS,
        window: timedelta = ADDRESS_WINDOW,
        max_addresses: int = 100_000,
    ) -> None:
        self.attempts = attempts
        self.window = window
        self.max_addresses = max_addresses
        self._seen: OrderedDict[str, deque[datetime]] = OrderedDict()

    def reserve(self, address: str | None, now: datetime) -> bool:
        """Count an attempt from `address` before it is checked; False if it is over the
        limit (then nothing is counted)."""
        key = address_key(address)
        times = self._seen.pop(key, None) or deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        self._seen[key] = times
        while len(self._seen) > self.max_addresses:
            self._seen.popitem(last=False)
        if len(times) >= self.attempts:
            return False
        times.append(now)
        return True

    def forgive(self, address: str | None) -> None:
        """A successful sign-in gives its attempt back."""
        times = self._seen.get(address_key(address))
        if times:
            times.pop()
