"""inventory_svc's HTTP API, called by the gateway (never by clients directly)."""

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel

from common.http import Reads
from common.pagination import Cursor, Limit, decode_cursor, page
from inventory_svc import queries

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
    sessions: Reads,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> MovementPage:
    """A product's stock ledger in the order it was recorded; pass ``next_cursor`` back as
    ``cursor`` for more."""
    rows = await queries.list_movements(
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


class LedgerBalance(BaseModel):
    product_id: UUID
    ledger_sum: int
    last_stock: int | None


class Mismatch(BaseModel):
    product_id: UUID
    ledger_sum: int
    stock: int | None


class AuditReport(BaseModel):
    products: int
    mismatches: list[Mismatch]


@router.get("/products/{product_id}/stock")
async def read_stock(product_id: UUID, sessions: Reads) -> LedgerBalance:
    """A product's ledger sum and the stock its latest movement reported (null: no movement)."""
    found = await queries.balance(sessions, product_id)
    return LedgerBalance(
        product_id=found.product_id, ledger_sum=found.ledger_sum, last_stock=found.last_stock
    )


@router.get("/audit")
async def audit(sessions: Reads) -> AuditReport:
    """How many products the ledger knows, and those whose changes do not add up to the stock
    reported by their latest movement (a movement is missing or was recorded twice)."""
    report = await queries.audit(sessions)
    return AuditReport(
        products=report.products,
        mismatches=[
            Mismatch(product_id=row.product_id, ledger_sum=row.ledger_sum, stock=row.last_stock)
            for row in report.mismatches
        ],
    )
