"""order_svc's use cases; each is one transaction (inbox check, change, outbox rows)."""

import logging
from decimal import Decimal
from uuid import UUID

from sqlalchemy import ScalarSelect, func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import SessionMaker, defer_insert, table_of
from common.inbox import first_delivery
from common.outbox import stage
from order_svc import domain
from order_svc.models import (
    Inbox,
    Order,
    OrderItem,
    OrderStatus,
    OrderStatusHistory,
    Outbox,
    ProductPrice,
)
from schemas.envelope import Envelope
from schemas.orders import (
    CANCELLED,
    PAID,
    PENDING,
    SHIPPED,
    CancelOrder,
    OrderPlaced,
    OrderRejected,
    PlaceOrder,
    ShipOrder,
)
from schemas.payments import PaymentFailed, PaymentSucceeded
from schemas.products import ItemQuantity, ProductCreated, ProductUpdated, StockReservationFailed

log = logging.getLogger(__name__)


async def remember_price(
    sessionmaker: SessionMaker, envelope: Envelope, event: ProductCreated | ProductUpdated
) -> None:
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        upsert = postgresql.insert(ProductPrice).values(
            product_id=event.product_id, name=event.name, price=event.price
        )
        await session.execute(
            upsert.on_conflict_do_update(
                index_elements=[ProductPrice.product_id],
                # ON CONFLICT DO UPDATE skips the column's onupdate, so set it here.
                set_={"name": event.name, "price": event.price, "updated_at": func.now()},
            )
        )


async def place_order(sessionmaker: SessionMaker, envelope: Envelope, command: PlaceOrder) -> None:
    """Store the order Pending and emit OrderPlaced, or Cancelled with OrderRejected.

    Idempotent by order id as well: a retried request is a new command for the same order.
    """
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        product_ids = {item.product_id for item in command.items}
        known = await session.execute(
            select(ProductPrice.product_id, ProductPrice.price).where(
                ProductPrice.product_id.in_(product_ids)
            )
        )
        prices = {product_id: price for product_id, price in known}
        outcome = domain.price(command.items, prices)
        if isinstance(outcome, domain.Priced):
            status, reason, total = PENDING, None, outcome.total
        else:
            status, reason, total = CANCELLED, outcome.reason, Decimal("0.00")
        created = await session.scalar(
            postgresql.insert(Order)
            .values(
                id=command.order_id,
                user_id=command.user_id,
                total_price=total,
                status_id=_status_id(status),
                reason=reason,
                payment_method_id=command.payment_method_id,
                address_id=command.address_id,
            )
            .on_conflict_do_nothing(index_elements=[Order.id])
            .returning(Order.id)
        )
        if created is None:
            log.info("order %s already exists; %s %s ignored", command.order_id, *_what(envelope))
            return
        _add_history(session, command.order_id, status, reason)
        if isinstance(outcome, domain.Rejected):
            log.info("order %s rejected: %s", command.order_id, outcome.reason)
            event: OrderPlaced | OrderRejected = OrderRejected(
                order_id=command.order_id, user_id=command.user_id, reason=outcome.reason
            )
        else:
            await session.execute(
                insert(OrderItem),
                [
                    {"order_id": command.order_id, **item.model_dump(mode="python")}
                    for item in outcome.items
                ],
            )
            event = OrderPlaced(
                order_id=command.order_id,
                user_id=command.user_id,
                items=outcome.items,
                total_price=outcome.total,
                payment_method_id=command.payment_method_id,
                address_id=command.address_id,
            )
        stage(session, Outbox, event, cause=envelope)


async def cancel_for_shortage(
    sessionmaker: SessionMaker, envelope: Envelope, event: StockReservationFailed
) -> None:
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        known = await session.execute(
            select(ProductPrice.product_id, ProductPrice.name).where(
                ProductPrice.product_id.in_([s.product_id for s in event.shortages])
            )
        )
        names = {product_id: name for product_id, name in known}
        reason = domain.out_of_stock_reason(event.shortages, names)
        await _change_status(
            session, envelope, event.order_id, CANCELLED, reason, only_from=PENDING
        )


async def mark_paid(
    sessionmaker: SessionMaker, envelope: Envelope, event: PaymentSucceeded
) -> None:
    reason = f"payment succeeded ({event.gateway_id})"
    await _move(sessionmaker, envelope, event.order_id, PAID, reason, only_from=PENDING)


async def cancel_for_failed_payment(
    sessionmaker: SessionMaker, envelope: Envelope, event: PaymentFailed
) -> None:
    reason = domain.payment_failed_reason(event.reason)
    await _move(sessionmaker, envelope, event.order_id, CANCELLED, reason, only_from=PENDING)


async def cancel_order(
    sessionmaker: SessionMaker, envelope: Envelope, command: CancelOrder
) -> None:
    await _move(sessionmaker, envelope, command.order_id, CANCELLED, command.reason)


async def ship_order(sessionmaker: SessionMaker, envelope: Envelope, command: ShipOrder) -> None:
    await _move(sessionmaker, envelope, command.order_id, SHIPPED, None)


async def _move(
    sessionmaker: SessionMaker,
    envelope: Envelope,
    order_id: UUID,
    target: str,
    reason: str | None,
    *,
    only_from: str | None = None,
) -> None:
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        await _change_status(session, envelope, order_id, target, reason, only_from=only_from)


async def _change_status(
    session: AsyncSession,
    envelope: Envelope,
    order_id: UUID,
    target: str,
    reason: str | None,
    *,
    only_from: str | None = None,
) -> None:
    """Move the order to ``target`` if its state machine allows it; else log and do nothing."""
    order = await _lock_order(session, order_id)
    if order is None:
        log.warning("%s %s names unknown order %s; ignored", *_what(envelope), order_id)
        return
    event = domain.transition(order, target, reason, only_from=only_from)
    if event is None:
        log.info(
            "%s %s ignored: order %s is %s, not movable to %s",
            *_what(envelope),
            order_id,
            order.status,
            target,
        )
        return
    await session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(status_id=_status_id(target), reason=reason if target == CANCELLED else None)
    )
    _add_history(session, order_id, target, reason)
    stage(session, Outbox, event, cause=envelope)


async def _lock_order(session: AsyncSession, order_id: UUID) -> domain.OrderFacts | None:
    """The order, locked, with its items: one query (a row per item, or one without any)."""
    rows = (
        await session.execute(
            select(
                Order.user_id,
                Order.total_price,
                OrderStatus.name,
                OrderItem.product_id,
                OrderItem.quantity,
            )
            .join(OrderStatus, OrderStatus.id == Order.status_id)
            .outerjoin(OrderItem, OrderItem.order_id == Order.id)
            .where(Order.id == order_id)
            .order_by(OrderItem.product_id)
            .with_for_update(of=Order)
        )
    ).all()
    if not rows:
        return None
    first = rows[0]
    return domain.OrderFacts(
        order_id=order_id,
        user_id=first.user_id,
        status=first.name,
        total_price=first.total_price,
        items=tuple(
            ItemQuantity(product_id=row.product_id, quantity=row.quantity)
            for row in rows
            if row.product_id is not None
        ),
    )


_HISTORY = insert(table_of(OrderStatusHistory)).values(at=func.clock_timestamp())
"""clock_timestamp, not now(): taken after the order's row lock, so history sorts in lock order
(the rows are written when the unit of work ends, still under the lock, in the order added)."""


def _add_history(session: AsyncSession, order_id: UUID, status: str, reason: str | None) -> None:
    defer_insert(session, _HISTORY, {"order_id": order_id, "status": status, "reason": reason})


def _status_id(name: str) -> ScalarSelect[UUID]:
    return select(OrderStatus.id).where(OrderStatus.name == name).scalar_subquery()


def _what(envelope: Envelope) -> tuple[str, UUID]:
    return envelope.type, envelope.id
