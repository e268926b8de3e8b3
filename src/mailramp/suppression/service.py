"""The suppression list: addresses none of a user's campaigns send to again. Bounces and
unsubscribes add to it through the event registry (`tracking/events.py`); people add and
remove addresses by hand here. Every address is normalised one way (`normalize_email`), so
what was added can be removed by the same text."""

from __future__ import annotations

from collections.abc import Collection

from mailramp.errors import NotFoundError, ValidationError
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.ids import new_object_id
from mailramp.kit.types import Page, normalize_email
from mailramp.kit.validation import object_id_arg
from mailramp.suppression.models import Suppression, SuppressionReason
from mailramp.suppression.repository import SuppressionRepository


def suppressed_address(email: str) -> str:
    """The form an address is suppressed under; ValidationError (field `email`) if it is
    not an address."""
    try:
        return normalize_email(email)
    except ValueError as error:
        raise ValidationError("email", str(error), value=email) from None


class SuppressionService:
    """A user's suppression list."""

    def __init__(self, store: SuppressionRepository, *, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    async def list_suppressions(
        self, user_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[Suppression]:
        """The user's suppressed addresses, newest first."""
        owner = object_id_arg(user_id, field="user_id")
        return await self._store.list_suppressions(owner, offset=offset, limit=limit)

    async def add(self, user_id: str, email: str) -> tuple[str, bool]:
        """Suppress an address by hand; returns it as stored, and False if it already was
        suppressed (the first reason is kept)."""
        owner = object_id_arg(user_id, field="user_id")
        address = suppressed_address(email)
        added = await self._store.add_suppression(
            Suppression(
                id=new_object_id(),
                user_id=owner,
                email=address,
                reason=SuppressionReason.MANUAL,
                created_at=self._clock(),
            )
        )
        return address, added

    async def remove(self, user_id: str, email: str) -> None:
        """Allow an address again; NotFoundError if it was not suppressed."""
        owner = object_id_arg(user_id, field="user_id")
        try:
            address = suppressed_address(email)
        except ValidationError:
            raise NotFoundError("suppressed address", email) from None
        if not await self._store.remove_suppression(owner, address):
            raise NotFoundError("suppressed address", email)

    async def suppressed_among(self, user_id: str, emails: Collection[str]) -> set[str]:
        """Which of `emails` (as stored) the user has suppressed."""
        return await self._store.suppressed_among(object_id_arg(user_id, field="user_id"), emails)
