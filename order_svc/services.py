"""order_svc's use cases; each is one transaction (inbox check, change, outbox rows)."""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import ScalarSelect, Text, Update, Uuid, bindparam, func, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from common.inbox import first_deliveries, first_delivery
from common.outbox import stage
from common.statements import Direct, InsertRows, any_of, array_rows, defer_insert, table_of
from common.unit_of_work import SessionMaker
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

M = TypeVar("M")


def _status_id(name: Any) -> ScalarSelect[UUID]:
    """The id of the status ``name`` (a value or a bind parameter)."""
    return select(OrderStatus.id).where(OrderStatus.name == name).scalar_subquery()


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


async def place_order(
    sessionmaker: SessionMaker, commands: Sequence[tuple[Envelope, PlaceOrder]]
) -> None:
    """Store each order Pending and emit OrderPlaced, or Cancelled with OrderRejected.

    Idempotent by order id as well: a retried request is a new command for the same order.
    """
    async with sessionmaker.begin() as session:
        fresh = await first_deliveries(session, Inbox, commands)
        if not fresh:
            return
        known = await _PRICES.rows(
            session,
            {"products": list({item.product_id for _, command in fresh for item in command.items})},
        )
        prices = {product_id: price for product_id, price in known}
        outcomes = [
            (envelope, command, domain.price(command.items, prices)) for envelope, command in fresh
        ]
        created = {
            row.id
            for row in await _CREATE_ORDER.rows_many(
                session, [_order_row(command, outcome) for _, command, outcome in outcomes]
            )
        }
        items: list[dict[str, Any]] = []
        for envelope, command, outcome in outcomes:
            if command.order_id not in created:
                log.info(
                    "order %s already exists; %s %s ignored", command.order_id, *_what(envelope)
                )
                continue
            if isinstance(outcome, domain.Rejected):
                log.info("order %s rejected: %s", command.order_id, outcome.reason)
                _add_history(session, command.order_id, CANCELLED, outcome.reason)
                rejected = OrderRejected(
                    order_id=command.order_id, user_id=command.user_id, reason=outcome.reason
                )
                stage(session, Outbox, rejected, cause=envelope)
                continue
            _add_history(session, command.order_id, PENDING, None)
            items.extend(
                {"order_id": command.order_id, **item.model_dump(mode="python")}
                for item in outcome.items
            )
            placed = OrderPlaced(
                order_id=command.order_id,
                user_id=command.user_id,
                items=outcome.items,
                total_price=outcome.total,
                payment_method_id=command.payment_method_id,
                address_id=command.address_id,
            )
            stage(session, Outbox, placed, cause=envelope)
        await _ADD_ITEMS.execute(session, items)


_PRICES = Direct(
    select(table_of(ProductPrice).c.product_id, table_of(ProductPrice).c.price).where(
        any_of(table_of(ProductPrice).c.product_id, "products")
    )
)
_ADD_ITEMS = InsertRows(table_of(OrderItem))
_CREATE_ORDER = Direct(
    postgresql.insert(table_of(Order))
    .values(status_id=_status_id(bindparam("status")))
    .on_conflict_do_nothing(index_elements=[table_of(Order).c.id])
    .returning(table_of(Order).c.id)
)
"""Insert orders that do not exist yet (rows with ``status`` named); returns the ids inserted."""


def _order_row(command: PlaceOrder, outcome: domain.Priced | domain.Rejected) -> dict[str, Any]:
    if isinstance(outcome, domain.Priced):
        status, reason, total = PENDING, None, outcome.total
    else:
        status, reason, total = CANCELLED, outcome.reason, Decimal("0.00")
    return {
        "id": command.order_id,
        "user_id": command.user_id,
        "total_price": total,
        "status": status,
        "reason": reason,
        "payment_method_id": command.payment_method_id,
        "address_id": command.address_id,
    }


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
        await _change_statuses(
            session, [_Move(envelope, event.order_id, CANCELLED, reason, only_from=PENDING)]
        )


async def mark_paid(
    sessionmaker: SessionMaker, paid: Sequence[tuple[Envelope, PaymentSucceeded]]
) -> None:
    await _move(
        sessionmaker,
        paid,
        lambda envelope, event: _Move(
            envelope,
            event.order_id,
            PAID,
            f"payment succeeded ({event.gateway_id})",
            only_from=PENDING,
        ),
    )


async def cancel_for_failed_payment(
    sessionmaker: SessionMaker, failed: Sequence[tuple[Envelope, PaymentFailed]]
) -> None:
    await _move(
        sessionmaker,
        failed,
        lambda envelope, event: _Move(
            envelope,
            event.order_id,
            CANCELLED,
            domain.payment_failed_reason(event.reason),
            only_from=PENDING,
        ),
    )


async def cancel_order(
    sessionmaker: SessionMaker, cancels: Sequence[tuple[Envelope, CancelOrder]]
) -> None:
    await _move(
        sessionmaker,
        cancels,
        lambda envelope, command: _Move(envelope, command.order_id, CANCELLED, command.reason),
    )


async def ship_order(
    sessionmaker: SessionMaker, ships: Sequence[tuple[Envelope, ShipOrder]]
) -> None:
    await _move(
        sessionmaker,
        ships,
        lambda envelope, command: _Move(envelope, command.order_id, SHIPPED, None),
    )


@dataclass(frozen=True)
class _Move:
    """A message's request to move an order to ``target`` (only from ``only_from``, if given)."""

    envelope: Envelope
    order_id: UUID
    target: str
    reason: str | None
    only_from: str | None = None


async def _move(
    sessionmaker: SessionMaker,
    messages: Sequence[tuple[Envelope, M]],
    move: Callable[[Envelope, M], _Move],
) -> None:
    async with sessionmaker.begin() as session:
        fresh = await first_deliveries(session, Inbox, messages)
        await _change_statuses(session, [move(envelope, message) for envelope, message in fresh])


async def _change_statuses(session: AsyncSession, moves: Sequence[_Move]) -> None:
    """Move each order (each another) to its target where its state machine allows it; else log
    and leave it."""
    if not moves:
        return
    orders = await _lock_orders(session, [move.order_id for move in moves])
    made: list[_Move] = []
    for move in moves:
        order = orders.get(move.order_id)
        if order is None:
            log.warning(
                "%s %s names unknown order %s; ignored", *_what(move.envelope), move.order_id
            )
            continue
        event = domain.transition(order, move.target, move.reason, only_from=move.only_from)
        if event is None:
            log.info(
                "%s %s ignored: order %s is %s, not movable to %s",
                *_what(move.envelope),
                move.order_id,
                order.status,
                move.target,
            )
            continue
        made.append(move)
        _add_history(session, move.order_id, move.target, move.reason)
        stage(session, Outbox, event, cause=move.envelope)
    if made:
        await _SET_STATUSES.execute(
            session,
            {
                "order_id": [move.order_id for move in made],
                "status": [move.target for move in made],
                "reason": [move.reason if move.target == CANCELLED else None for move in made],
            },
        )


def _build_set_statuses() -> Update:
    moves = array_rows({"order_id": Uuid, "status": Text, "reason": Text}, name="new")
    orders = table_of(Order)
    return (
        update(orders)
        .where(orders.c.id == moves.c.order_id)
        .values(status_id=_status_id(moves.c.status), reason=moves.c.reason)
    )


_SET_STATUSES = Direct(_build_set_statuses())
"""Bound with lists of ``order_id``, ``status`` and ``reason``: one statement for a run."""


async def _lock_orders(
    session: AsyncSession, order_ids: Sequence[UUID]
) -> dict[UUID, domain.OrderFacts]:
    """The orders, locked in id order, with their items: one query (a row per item, or one for
    an order without any)."""
    rows = await _LOCK_ORDERS.rows(session, {"orders": list(order_ids)})
    orders: dict[UUID, domain.OrderFacts] = {}
    for order_id, group in groupby(rows, key=lambda row: row.id):
        lines = list(group)
        first = lines[0]
        orders[order_id] = domain.OrderFacts(
            order_id=order_id,
            user_id=first.user_id,
            status=first.name,
            total_price=first.total_price,
            items=tuple(
                ItemQuantity(product_id=line.product_id, quantity=line.quantity)
                for line in lines
                if line.product_id is not None
            ),
        )
    return orders


_LOCK_ORDERS = Direct(
    select(
        Order.id,
        Order.user_id,
        Order.total_price,
        OrderStatus.name,
        OrderItem.product_id,
        OrderItem.quantity,
    )
    .join(OrderStatus, OrderStatus.id == Order.status_id)
    .outerjoin(OrderItem, OrderItem.order_id == Order.id)
    .where(any_of(table_of(Order).c.id, "orders"))
    .order_by(Order.id, OrderItem.product_id)
    .with_for_update(of=Order)
)


_HISTORY = InsertRows(table_of(OrderStatusHistory), sql_values={"at": func.clock_timestamp()})
"""clock_timestamp, not now(): taken after the order's row lock, so history sorts in lock order
(the rows are written when the unit of work ends, still under the lock, in the order added)."""


def _add_history(session: AsyncSession, order_id: UUID, status: str, reason: str | None) -> None:
    defer_insert(session, _HISTORY, {"order_id": order_id, "status": status, "reason": reason})


def _what(envelope: Envelope) -> tuple[str, UUID]:
    return envelope.type, envelope.id
