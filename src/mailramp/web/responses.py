"""What every JSON route shares: paging parameters, and the typed public models routes
answer with. A public model is built from a domain object with `Model.of(obj)`: only the
fields it declares leave the server (the domain's `…Fields` bases hold no secret), and the
OpenAPI document describes exactly that."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Generic, Self, TypeVar, get_args

from fastapi import Depends, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from mailramp.kit.types import Page

Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="Items to skip.")]

Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]


@dataclass(frozen=True)
class Paging:
    """Which page of a list a request asks for (`?offset=&limit=`)."""

    offset: int
    limit: int


def paging(offset: Offset = 0, limit: Limit = 50) -> Paging:
    """The page a list route was asked for."""
    return Paging(offset=offset, limit=limit)


PagingDep = Annotated[Paging, Depends(paging)]


class Public(BaseModel):
    """A response model: built from a domain object's attributes."""

    @classmethod
    def of(cls, value: Any) -> Self:
        """The public view of `value` (a domain model or anything with these attributes)."""
        return cls.model_validate(value, from_attributes=True)


ItemT = TypeVar("ItemT", bound=Public)


class PagePublic(BaseModel, Generic[ItemT]):
    """One page of a list: `total` items in all, `limit` from `offset` on."""

    items: list[ItemT]
    total: int
    offset: int
    limit: int

    @classmethod
    def of(cls, page: Page[Any]) -> Self:
        """The public view of a page of domain objects (`PagePublic[XPublic].of(page)`)."""
        (item_type,) = get_args(cls.model_fields["items"].annotation)
        return cls(
            items=[item_type.of(item) for item in page.items],
            total=page.total,
            offset=page.offset,
            limit=page.limit,
        )


class CsvStream(StreamingResponse):
    """A CSV file, written as it is read (the OpenAPI document says `text/csv`)."""

    media_type = "text/csv"


class Download(Response):
    """Bytes to save, never to show (the OpenAPI document says
    `application/octet-stream`)."""

    media_type = "application/octet-stream"
