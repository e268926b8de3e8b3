"""User passwords: argon2id hashes (argon2-cffi's defaults, RFC 9106 low-memory profile).

Hashing takes tens of milliseconds of CPU and 64 MiB by design. Run on the event loop, a
burst of sign-ins — anyone can send them, account or not — would stall every request of the
process; run without a bound, it would take all memory. `Passwords` runs them on a few
threads (argon2-cffi releases the GIL while it works) and refuses new work when too much is
already waiting, so a flood gets quick 503s and everything else keeps answering.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailramp.errors import BusyError

T = TypeVar("T")

_hasher = PasswordHasher()


def hash_password(password: str, hasher: PasswordHasher = _hasher) -> str:
    """An argon2id hash of `password`, with its own salt and parameters (blocking)."""
    return hasher.hash(password)


def verify_password(password_hash: str, password: str, hasher: PasswordHasher = _hasher) -> bool:
    """Whether `password` matches `password_hash`; never raises for a wrong password
    (blocking)."""
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's defaults."""
    return _hasher.check_needs_rehash(password_hash)


class Passwords:
    """Hash and verify off the event loop: at most `workers` at once, at most `max_waiting`
    more queued; beyond that, BusyError (503, retry shortly)."""

    def __init__(
        self, *, workers: int | None = None, max_waiting: int = 64, hasher: PasswordHasher = _hasher
    ) -> None:
        self.hasher = hasher
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.max_waiting = max_waiting
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="argon2")
        self._lock = threading.Lock()
        self._pending = 0

    @functools.cached_property
    def dummy_hash(self) -> str:
        """A hash of a random password with this pool's parameters: what a check against no
        account is made on, so it costs what a real one costs."""
        return hash_password(secrets.token_hex(16), self.hasher)

    async def hash(self, password: str) -> str:
        """An argon2id hash of `password`."""
        return await self._run(hash_password, password, self.hasher)

    async def verify(self, password_hash: str, password: str) -> bool:
        """Whether `password` matches `password_hash`."""
        return await self._run(verify_password, password_hash, password, self.hasher)

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        with self._lock:
            if self._pending >= self.workers + self.max_waiting:
                raise BusyError("too many sign-ins in progress; try again in a few seconds")
            self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            with self._lock:
                self._pending -= 1


PASSWORDS = Passwords()
"""The process's one pool: every service that hashes shares its bound."""
