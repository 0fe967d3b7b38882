"""order_svc's reads for its HTTP API, as the models it answers with; no writes."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import bindparam, select

from common.db import ReadPool
from common.pagination import page_after
from common.statements import Direct
from common.unit_of_work import SessionMaker
from order_svc.models import Order, OrderItem, OrderStatus, OrderStatusHistory, ProductPrice
from schemas.envelope import Money


class OrderSummary(BaseModel):
    id: UUID
    user_id: UUID
    status: str
    reason: str | None
    total_price: Money
    created_at: datetime


class OrderLine(BaseModel):
    product_id: UUID
    quantity: int
    unit_price: Money


class StatusChange(BaseModel):
    status: str
    reason: str | None
    at: datetime


class OrderPublic(OrderSummary):
    items: tuple[OrderLine, ...]
    history: tuple[StatusChange, ...]


_SUMMARY_COLUMNS: tuple[Any, ...] = (
    Order.id,
    Order.user_id,
    OrderStatus.name.label("status"),
    Order.reason,
    Order.total_price,
    Order.created_at,
)


async def list_orders(
    sessionmaker: SessionMaker,
    *,
    user_id: UUID | None,
    limit: int,
    after: tuple[datetime, UUID] | None,
) -> list[OrderSummary]:
    """Up to ``limit`` orders, newest first, after the sort key ``after`` (a page's cursor)."""
    query = select(*_SUMMARY_COLUMNS).join(OrderStatus, OrderStatus.id == Order.status_id)
    if user_id is not None:
        query = query.where(Order.user_id == user_id)
    query = page_after(
        query, Order.created_at, Order.id, after=after, limit=limit, newest_first=True
    )
    async with sessionmaker() as session:
        rows = await session.execute(query)
    return [OrderSummary.model_validate(row, from_attributes=True) for row in rows]


async def get_order(sessionmaker: SessionMaker, order_id: UUID) -> OrderPublic | None:
    """One order with its lines and status history (two queries)."""
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(
                    *_SUMMARY_COLUMNS,
                    OrderItem.product_id,
                    OrderItem.quantity,
                    OrderItem.unit_price,
                )
                .join(OrderStatus, OrderStatus.id == Order.status_id)
                .outerjoin(OrderItem, OrderItem.order_id == Order.id)
                .where(Order.id == order_id)
                .order_by(OrderItem.product_id)
            )
        ).all()
        if not rows:
            return None
        history = await session.execute(
            select(OrderStatusHistory.status, OrderStatusHistory.reason, OrderStatusHistory.at)
            .where(OrderStatusHistory.order_id == order_id)
            .order_by(OrderStatusHistory.at, OrderStatusHistory.id)
        )
        changes = tuple(
            StatusChange.model_validate(change, from_attributes=True) for change in history
        )
    lines = tuple(
        OrderLine.model_validate(row, from_attributes=True)
        for row in rows
        if row.product_id is not None
    )
    return OrderPublic(**rows[0]._mapping, items=lines, history=changes)


@dataclass(frozen=True)
class OwnerAndStatus:
    user_id: UUID
    status: str


_OWNER_AND_STATUS = Direct(
    select(Order.user_id, OrderStatus.name)
    .join(OrderStatus, OrderStatus.id == Order.status_id)
    .where(Order.id == bindparam("order_id"))
)


async def get_order_status(pool: ReadPool, order_id: UUID) -> OwnerAndStatus | None:
    """An order's owner and status (one query, asked before every placement with an
    Idempotency-Key, every cancellation and every shipment)."""
    rows = await _OWNER_AND_STATUS.rows_read(pool, {"order_id": order_id})
    return OwnerAndStatus(*rows[0]) if rows else None


async def get_price(sessionmaker: SessionMaker, product_id: UUID) -> ProductPrice | None:
    async with sessionmaker() as session:
        return await session.get(ProductPrice, product_id)
