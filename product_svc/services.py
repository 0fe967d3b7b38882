"""product_svc's use cases; each is one transaction (inbox check, change, outbox rows).

The set-based ones (:func:`reserve_stock`, :func:`release_stock`) take a ``run`` of messages of
one type, each about another order, and share one shape, with the same names:

1. ``fresh``: the run's first deliveries (:func:`common.inbox.first_deliveries`);
2. ``locked``: one read, under lock, of every row the run needs;
3. a loop over ``fresh`` where the domain decides each message's ``outcome`` and ``writes``
   (:class:`~product_svc.writes.Writes`) collects its rows and stages its events;
4. ``await writes.execute()``: the run's bulk writes.
"""

import logging
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.inbox import first_deliveries, first_delivery
from common.outbox import stage
from common.outcomes import Refused
from common.unit_of_work import SessionMaker
from product_svc import domain, statements
from product_svc.models import (
    Category,
    Inbox,
    Inventory,
    Outbox,
    Product,
    ProductImage,
    Reservation,
)
from product_svc.writes import Writes, set_stocks
from schemas.envelope import Envelope
from schemas.orders import OrderCancelled, OrderPlaced
from schemas.products import (
    STOCK_MAX,
    AddProductImage,
    CategoryCreated,
    CreateCategory,
    CreateProduct,
    ItemQuantity,
    ProductCreated,
    ProductImageAdded,
    ProductUpdated,
    RestockProduct,
    StockChanged,
    UpdateProduct,
)

log = logging.getLogger(__name__)


async def create_category(
    sessionmaker: SessionMaker, envelope: Envelope, command: CreateCategory
) -> None:
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        if await session.get(Category, command.category_id) is not None:
            return  # the same command sent again (a retried request)
        session.add(Category(id=command.category_id, name=command.name))
        stage(
            session,
            Outbox,
            CategoryCreated(category_id=command.category_id, name=command.name),
            cause=envelope,
        )


async def create_product(
    sessionmaker: SessionMaker, envelope: Envelope, command: CreateProduct
) -> Refused | None:
    """The product and its stock; a first stock above zero is the product's first movement."""
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return None
        if await session.get(Product, command.product_id) is not None:
            return None
        if not await _category_exists(session, command.category_id):
            log.warning(
                "product %s rejected: no category %s", command.product_id, command.category_id
            )
            return Refused("no such category", "category_id")
        session.add(
            Product(
                id=command.product_id,
                name=command.name,
                description=command.description,
                price=command.price,
                category_id=command.category_id,
                changed_at=envelope.occurred_at,
            )
        )
        await session.flush()
        session.add(Inventory(product_id=command.product_id, stock=command.initial_stock))
        stage(
            session,
            Outbox,
            ProductCreated(
                product_id=command.product_id,
                name=command.name,
                description=command.description,
                price=command.price,
                category_id=command.category_id,
            ),
            cause=envelope,
        )
        if command.initial_stock > 0:
            stage(
                session,
                Outbox,
                StockChanged(
                    product_id=command.product_id,
                    change=command.initial_stock,
                    stock=command.initial_stock,
                    reason=domain.RESTOCK,
                ),
                cause=envelope,
            )
    return None


async def update_product(
    sessionmaker: SessionMaker, envelope: Envelope, command: UpdateProduct
) -> Refused | None:
    """Change the fields the command gives (``None`` leaves a field as it is); an update issued
    before the product's last create or update (``changed_at``) is refused as stale."""
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return None
        product = await session.get(Product, command.product_id, with_for_update=True)
        if product is None:
            log.warning("update of unknown product %s ignored", command.product_id)
            return Refused("product not found", status=404)
        if not await _category_exists(session, command.category_id):
            log.warning(
                "update of product %s rejected: no category %s",
                command.product_id,
                command.category_id,
            )
            return Refused("no such category", "category_id")
        if product.changed_at is not None and envelope.occurred_at < product.changed_at:
            log.warning(
                "update of product %s issued at %s ignored: a later one is applied",
                command.product_id,
                envelope.occurred_at,
            )
            return Refused("a later update of this product is applied already", status=409)
        product.changed_at = envelope.occurred_at
        if command.name is not None:
            product.name = command.name
        if command.description is not None:
            product.description = command.description
        if command.price is not None:
            product.price = command.price
        if command.category_id is not None:
            product.category_id = command.category_id
        stage(
            session,
            Outbox,
            ProductUpdated(
                product_id=product.id,
                name=product.name,
                description=product.description,
                price=product.price,
                category_id=product.category_id,
            ),
            cause=envelope,
        )
    return None


async def add_product_image(
    sessionmaker: SessionMaker, envelope: Envelope, command: AddProductImage
) -> Refused | None:
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return None
        if await session.get(ProductImage, command.image_id) is not None:
            return None
        if await session.get(Product, command.product_id) is None:
            log.warning(
                "image %s of unknown product %s ignored", command.image_id, command.product_id
            )
            return Refused("product not found", status=404)
        session.add(
            ProductImage(id=command.image_id, product_id=command.product_id, url=command.url)
        )
        stage(session, Outbox, ProductImageAdded(**command.model_dump()), cause=envelope)
    return None


async def restock_product(
    sessionmaker: SessionMaker, envelope: Envelope, command: RestockProduct
) -> Refused | None:
    """Add to (or, with a negative change, take from) a product's stock; never below zero, and
    never so high that a cancelled order's stock could not be given back."""
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return None
        stock = await _lock_stock(session, [command.product_id])
        if command.product_id not in stock:
            log.warning("restock of unknown product %s ignored", command.product_id)
            return Refused("product not found", status=404)
        if command.change == 0:
            return None
        held = await _held(session, command.product_id) if command.change > 0 else 0
        try:
            after = domain.apply_change(stock[command.product_id], command.change, held)
        except domain.StockOutOfRangeError as exc:
            log.warning("restock of product %s refused: %s", command.product_id, exc)
            if command.change < 0:
                stock_now = stock[command.product_id]
                return Refused(f"stock would go below zero (it is {stock_now})", status=409)
            return Refused(f"stock would pass the maximum of {STOCK_MAX}", "change")
        await set_stocks(session, {command.product_id: after})
        stage(
            session,
            Outbox,
            StockChanged(
                product_id=command.product_id,
                change=command.change,
                stock=after,
                reason=command.reason,
            ),
            cause=envelope,
        )
    return None


async def reserve_stock(
    sessionmaker: SessionMaker, run: Sequence[tuple[Envelope, OrderPlaced]]
) -> None:
    """Reserve every item of each order, or none: StockReserved or StockReservationFailed.

    A run of orders (each another order) is served in the order it came, from one lock of every
    product it names: the stock one order leaves is what the next one finds. An order already
    cancelled (its OrderPlaced re-driven or redelivered late) reserves nothing and publishes
    nothing: order_svc has it Cancelled.
    """
    async with sessionmaker.begin() as session:
        fresh = await first_deliveries(session, Inbox, run)
        if not fresh:
            return
        wanted = await _wanted(session, fresh)
        locked = await _lock_stock(
            session, {item.product_id for items in wanted.values() for item in items}
        )
        writes = Writes(session)
        for envelope, event in fresh:
            if event.order_id not in wanted:
                continue
            outcome = domain.reserve(locked, wanted[event.order_id])
            if isinstance(outcome, domain.OutOfStock):
                log.info("order %s is short of stock: %s", event.order_id, outcome.shortages)
                writes.out_of_stock(envelope, event, outcome)
                continue
            locked.update(outcome.stock_after)
            writes.reserved(envelope, event, outcome)
        await writes.execute()


async def _wanted(
    session: AsyncSession, fresh: Sequence[tuple[Envelope, OrderPlaced]]
) -> dict[UUID, tuple[ItemQuantity, ...]]:
    """Each order's items to reserve, one line per product; none for an order that holds a
    reservation already (placed again under another message id) or was cancelled already."""
    rows = await statements.RESERVED_OR_CANCELLED.rows(
        session, {"orders": [event.order_id for _, event in fresh]}
    )
    reserved_before = {row.order_id for row in rows if not row.cancelled}
    cancelled = {row.order_id for row in rows if row.cancelled}
    for _, event in fresh:
        if event.order_id in cancelled:
            log.info("order %s was cancelled before: it reserves nothing", event.order_id)
    return {
        event.order_id: domain.merge_lines(event.items)
        for _, event in fresh
        if event.order_id not in reserved_before | cancelled
    }


async def release_stock(
    sessionmaker: SessionMaker, run: Sequence[tuple[Envelope, OrderCancelled]]
) -> None:
    """Give back what each cancelled order holds; an order that holds nothing changes nothing
    but is remembered, so that its OrderPlaced, should it come later, reserves nothing."""
    async with sessionmaker.begin() as session:
        fresh = await first_deliveries(session, Inbox, run)
        if not fresh:
            return
        order_ids = [event.order_id for _, event in fresh]
        await statements.REMEMBER_CANCELLED.execute(session, {"order_id": order_ids})
        locked = await _lock_held(session, order_ids)
        if locked is None:
            return
        writes = Writes(session)
        for envelope, event in fresh:
            held = locked.reservations.get(event.order_id)
            if held is None:
                continue
            for reservation in held:
                # Within STOCK_MAX: a restock leaves room for what orders hold.
                after = domain.apply_change(
                    locked.stock[reservation.product_id], reservation.quantity
                )
                locked.stock[reservation.product_id] = after
                writes.gave_back(envelope, event, reservation, after)
            writes.released(envelope, event, held)
        await writes.execute()


class _Held(NamedTuple):
    """What a run of cancellations gives back, locked: each order's reservations, and the
    stock of their products."""

    reservations: dict[UUID, list[Any]]
    stock: dict[UUID, int]


async def _lock_held(session: AsyncSession, order_ids: list[UUID]) -> _Held | None:
    """The reservations the orders hold and their products' stock, locked; None if none."""
    held = await statements.LOCK_HELD.rows(session, {"orders": order_ids})
    if not held:
        return None
    reservations: dict[UUID, list[Any]] = {}
    for reservation in held:
        reservations.setdefault(reservation.order_id, []).append(reservation)
    stock = await _lock_stock(session, {reservation.product_id for reservation in held})
    return _Held(reservations, stock)


async def _category_exists(session: AsyncSession, category_id: UUID | None) -> bool:
    return category_id is None or await session.get(Category, category_id) is not None


async def _held(session: AsyncSession, product_id: UUID) -> int:
    """What the product's orders hold, and a cancellation would give back. Shipped orders count
    too (this service does not learn of shipping), so the figure errs high, never low."""
    held = await session.scalar(
        select(func.coalesce(func.sum(Reservation.quantity), 0)).where(
            Reservation.product_id == product_id, Reservation.released.is_(False)
        )
    )
    return int(held or 0)


async def _lock_stock(session: AsyncSession, product_ids: Iterable[UUID]) -> dict[UUID, int]:
    """Lock the products' inventory rows in one fixed order (no deadlock between two orders)."""
    rows = await statements.LOCK_STOCK.rows(session, {"products": list(set(product_ids))})
    return {product_id: stock for product_id, stock in rows}
