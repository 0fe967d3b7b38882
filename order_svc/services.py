"""order_svc's use cases; each is one transaction (inbox check, change, outbox rows).

The set-based ones (:func:`place_order`, and the status changes through :func:`_change_statuses`)
take a ``run`` of messages of one type, each about another order, and share one shape, with the
same names:

1. ``fresh``: the run's first deliveries (:func:`common.inbox.first_deliveries`);
2. ``locked``: one read, under lock, of every row the run needs (a new order's row is locked
   by its insert);
3. a loop over ``fresh`` where the domain decides each message's ``outcome`` and ``writes``
   (:class:`~order_svc.writes.Writes`) collects its rows and stages its events;
4. ``await writes.execute()``: the run's bulk writes.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from common.inbox import first_deliveries, first_delivery
from common.unit_of_work import SessionMaker
from order_svc import domain, statements
from order_svc.models import Inbox, ProductPrice
from order_svc.writes import Writes
from schemas.envelope import Envelope
from schemas.orders import CANCELLED, PAID, PENDING, SHIPPED, CancelOrder, PlaceOrder, ShipOrder
from schemas.payments import PaymentFailed, PaymentSucceeded
from schemas.products import ItemQuantity, ProductCreated, ProductUpdated, StockReservationFailed

log = logging.getLogger(__name__)

M = TypeVar("M")


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
    sessionmaker: SessionMaker, run: Sequence[tuple[Envelope, PlaceOrder]]
) -> None:
    """Store each order Pending and emit OrderPlaced, or Cancelled with OrderRejected.

    Idempotent by order id as well: a retried request is a new command for the same order.
    """
    async with sessionmaker.begin() as session:
        fresh = await first_deliveries(session, Inbox, run)
        if not fresh:
            return
        found = await statements.PRICES.rows(
            session,
            {"products": list({item.product_id for _, command in fresh for item in command.items})},
        )
        prices = {product_id: price for product_id, price in found}
        priced = [
            (envelope, command, domain.price(command.items, prices)) for envelope, command in fresh
        ]
        locked = await _create_orders(session, priced)
        writes = Writes(session)
        for envelope, command, outcome in priced:
            if command.order_id not in locked:
                log.info(
                    "order %s already exists; %s %s ignored", command.order_id, *_what(envelope)
                )
            elif isinstance(outcome, domain.Rejected):
                log.info("order %s rejected: %s", command.order_id, outcome.reason)
                writes.rejected(envelope, command, outcome)
            else:
                writes.placed(envelope, command, outcome)
        await writes.execute()


async def _create_orders(
    session: AsyncSession,
    priced: Sequence[tuple[Envelope, PlaceOrder, domain.Priced | domain.Rejected]],
) -> set[UUID]:
    """Insert the orders that do not exist yet, each with its outcome's status; the ids
    inserted (locked until the run commits)."""
    rows = await statements.CREATE_ORDER.rows_many(
        session, [_order_row(command, outcome) for _, command, outcome in priced]
    )
    return {row.id for row in rows}


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
    sessionmaker: SessionMaker, run: Sequence[tuple[Envelope, PaymentSucceeded]]
) -> None:
    await _move(
        sessionmaker,
        run,
        lambda envelope, event: _Move(
            envelope,
            event.order_id,
            PAID,
            f"payment succeeded ({event.gateway_id})",
            only_from=PENDING,
        ),
    )


async def cancel_for_failed_payment(
    sessionmaker: SessionMaker, run: Sequence[tuple[Envelope, PaymentFailed]]
) -> None:
    await _move(
        sessionmaker,
        run,
        lambda envelope, event: _Move(
            envelope,
            event.order_id,
            CANCELLED,
            domain.payment_failed_reason(event.reason),
            only_from=PENDING,
        ),
    )


async def cancel_order(
    sessionmaker: SessionMaker, run: Sequence[tuple[Envelope, CancelOrder]]
) -> None:
    await _move(
        sessionmaker,
        run,
        lambda envelope, command: _Move(envelope, command.order_id, CANCELLED, command.reason),
    )


async def ship_order(sessionmaker: SessionMaker, run: Sequence[tuple[Envelope, ShipOrder]]) -> None:
    await _move(
        sessionmaker,
        run,
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
    run: Sequence[tuple[Envelope, M]],
    move: Callable[[Envelope, M], _Move],
) -> None:
    async with sessionmaker.begin() as session:
        fresh = await first_deliveries(session, Inbox, run)
        await _change_statuses(session, [move(envelope, message) for envelope, message in fresh])


async def _change_statuses(session: AsyncSession, moves: Sequence[_Move]) -> None:
    """Move each order (each another) to its target where its state machine allows it; else log
    and leave it."""
    if not moves:
        return
    locked = await _lock_orders(session, [move.order_id for move in moves])
    writes = Writes(session)
    for move in moves:
        order = locked.get(move.order_id)
        if order is None:
            log.warning(
                "%s %s names unknown order %s; ignored", *_what(move.envelope), move.order_id
            )
            continue
        outcome = domain.transition(order, move.target, move.reason, only_from=move.only_from)
        if outcome is None:
            log.info(
                "%s %s ignored: order %s is %s, not movable to %s",
                *_what(move.envelope),
                move.order_id,
                order.status,
                move.target,
            )
            continue
        writes.moved(move.envelope, outcome, move.target, move.reason)
    await writes.execute()


async def _lock_orders(
    session: AsyncSession, order_ids: Sequence[UUID]
) -> dict[UUID, domain.OrderFacts]:
    """The orders, locked in id order, with their items (:data:`statements.LOCK_ORDERS`)."""
    rows = await statements.LOCK_ORDERS.rows(session, {"orders": list(order_ids)})
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


def _what(envelope: Envelope) -> tuple[str, UUID]:
    return envelope.type, envelope.id
