"""inventory_svc's HTTP API, called by the gateway (never by clients directly)."""

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel

from common.http import Sessions
from common.pagination import Cursor, Limit, decode_cursor, page
from inventory_svc import services

router = APIRouter(tags=["inventory"])


class MovementPublic(BaseModel):
    id: UUID
    product_id: UUID
    change: int
    reason: str
    created_at: datetime


class MovementPage(BaseModel):
    items: list[MovementPublic]
    next_cursor: str | None


@router.get("/products/{product_id}/movements", responses={422: {"description": "bad cursor"}})
async def list_movements(
    product_id: UUID,
    sessions: Sessions,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> MovementPage:
    """A product's stock ledger, oldest first; pass ``next_cursor`` back as ``cursor`` for more."""
    rows = await services.list_movements(
        sessions, product_id, after=decode_cursor(cursor), limit=limit + 1
    )
    items, next_cursor = page(rows, limit)
    return MovementPage(
        items=[
            MovementPublic(
                id=row.id,
                product_id=row.product_id,
                change=row.change,
                reason=row.reason,
                created_at=row.created_at,
            )
            for row in items
        ],
        next_cursor=next_cursor,
    )
