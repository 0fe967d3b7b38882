"""order_svc's HTTP read API, called by the gateway (never by clients directly).

The gateway authorises: it passes ``user_id`` to list one customer's orders and checks that an
order it reads belongs to the caller.
"""

from uuid import UUID

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from common.http import ReadConnections, Reads
from common.pagination import Cursor, Limit, decode_cursor, page
from order_svc import queries
from order_svc.queries import OrderPublic, OrderSummary
from schemas.envelope import Money

router = APIRouter(tags=["orders"])


class OrderPage(BaseModel):
    items: list[OrderSummary]
    next_cursor: str | None


class OrderStatusPublic(BaseModel):
    id: UUID
    user_id: UUID
    status: str


class ProductPricePublic(BaseModel):
    product_id: UUID
    name: str
    price: Money


@router.get("/orders")
async def list_orders(
    sessions: Reads,
    user_id: UUID | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> OrderPage:
    """Orders, newest first: everyone's, or one user's with ``user_id``."""
    rows = await queries.list_orders(
        sessions, user_id=user_id, limit=limit + 1, after=decode_cursor(cursor)
    )
    items, next_cursor = page(rows, limit)
    return OrderPage(
        items=list(items),
        next_cursor=next_cursor,
    )


@router.get("/orders/{order_id}", responses={404: {"description": "no such order"}})
async def read_order(order_id: UUID, sessions: Reads) -> OrderPublic:
    """One order with its lines and its status history, oldest step first."""
    order = await queries.get_order(sessions, order_id)
    if order is None:
        raise HTTPException(404, "order not found")
    return order


@router.get("/orders/{order_id}/status", responses={404: {"description": "no such order"}})
async def read_order_status(order_id: UUID, pool: ReadConnections) -> OrderStatusPublic:
    """An order's owner and status only: one primary-key read, for the gateway's checks before
    a command (a retried placement, a cancellation, a shipment)."""
    found = await queries.get_order_status(pool, order_id)
    if found is None:
        raise HTTPException(404, "order not found")
    return OrderStatusPublic(id=order_id, user_id=found.user_id, status=found.status)


@router.get("/products/{product_id}/price", responses={404: {"description": "price not known"}})
async def read_price(product_id: UUID, sessions: Reads) -> ProductPricePublic:
    """The price order_svc will charge for a product (its copy of the catalog's price)."""
    found = await queries.get_price(sessions, product_id)
    if found is None:
        raise HTTPException(404, "product not known")
    return ProductPricePublic(product_id=found.product_id, name=found.name, price=found.price)
