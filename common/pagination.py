"""Cursor pagination shared by every list endpoint: ``{items, next_cursor}``.

A cursor is the opaque, URL-safe encoding of the last item's sort key ``(created_at, id)``;
keyset pagination stays fast and stable while rows are added.
"""

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Protocol, TypeVar, TypeVarTuple
from uuid import UUID

from fastapi import HTTPException, Query
from sqlalchemy import BindParameter, Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

Limit = Annotated[int, Query(ge=1, le=200, description="items per page")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="the next_cursor of the previous page")
]


class Keyed(Protocol):
    @property
    def created_at(self) -> datetime: ...
    @property
    def id(self) -> UUID: ...


K = TypeVar("K", bound=Keyed)
Ts = TypeVarTuple("Ts")


def encode_cursor(created_at: datetime, item_id: UUID) -> str:
    raw = f"{created_at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, UUID] | None:
    """The sort key after which the page starts; a malformed cursor is the client's 422."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, item_id = raw.split("|")
        after = datetime.fromisoformat(created_at), UUID(item_id)
        if after[0].tzinfo is None:
            raise ValueError("a cursor's timestamp carries its offset")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise HTTPException(
            422, [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}]
        ) from None
    return after


def page(rows: Sequence[K], limit: int) -> tuple[Sequence[K], str | None]:
    """Split ``limit + 1`` fetched rows into this page and the cursor of the next one."""
    items = rows[:limit]
    more = len(rows) > limit
    return items, encode_cursor(items[-1].created_at, items[-1].id) if more else None


def page_after(
    query: Select[*Ts],
    created_at: InstrumentedAttribute[datetime],
    item_id: InstrumentedAttribute[UUID],
    *,
    after: tuple[datetime, UUID] | tuple[BindParameter[datetime], BindParameter[UUID]] | None,
    limit: int | BindParameter[int],
    newest_first: bool = False,
) -> Select[*Ts]:
    """Up to ``limit`` rows of ``query`` after the sort key ``after`` (a decoded cursor; None
    starts at the beginning), in ``(created_at, item_id)`` order, descending if ``newest_first``.
    ``after`` and ``limit`` may be bind parameters, for a statement built once and run with
    each page's values (:class:`common.statements.Direct`)."""
    key = tuple_(created_at, item_id)
    if after is not None:
        # values are bound as the key's columns; bind parameters keep their own names
        bound = tuple_(*after) if isinstance(after[0], BindParameter) else after
        query = query.where(key < bound if newest_first else key > bound)
    if newest_first:
        return query.order_by(created_at.desc(), item_id.desc()).limit(limit)
    return query.order_by(created_at, item_id).limit(limit)
