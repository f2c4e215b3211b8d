"""limit/offset pages: one COUNT and one SELECT, however many rows a page holds."""

from typing import Any

from django.db.models import Model, QuerySet
from ninja import Schema
from pydantic import Field

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Past this an OFFSET scan is pointless; it also keeps the value inside every database's integer.
MAX_OFFSET = 10**9


class PageQuery(Schema):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


def page_of(queryset: "QuerySet[Any]", query: PageQuery) -> dict[str, Any]:
    """The page as a `Page` schema reads it. The queryset must be ordered (the models are)."""
    items: list[Model] = list(queryset[query.offset : query.offset + query.limit])
    return {
        "count": queryset.count(),
        "limit": query.limit,
        "offset": query.offset,
        "items": items,
    }
