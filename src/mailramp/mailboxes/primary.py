"""The primary-mailbox rule: each user has at most one primary mailbox (their oldest linked
one unless they chose another). Stores enforce it with a partial unique index; two writers
promoting a mailbox at the same moment get a PrimaryMailboxConflict, and the loser simply
runs its operation again (it then sees the winner's primary)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

PRIMARY_RETRIES = 5


class PrimaryMailboxConflict(Exception):
    """Another writer made a primary mailbox for the user at the same moment: retry."""


async def retry_primary(operation: Callable[[], Awaitable[T]]) -> T:
    """Run `operation`, again after a PrimaryMailboxConflict, up to PRIMARY_RETRIES times."""
    for attempt in range(PRIMARY_RETRIES):
        try:
            return await operation()
        except PrimaryMailboxConflict:
            if attempt == PRIMARY_RETRIES - 1:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")
