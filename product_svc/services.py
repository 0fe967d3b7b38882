"""product_svc's use cases; each is one transaction (inbox check, change, outbox rows)."""

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Uuid, false, func, select, true, union, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from common.inbox import first_deliveries, first_delivery
from common.outbox import stage
from common.outcomes import Refused
from common.statements import Direct, InsertRows, UpdateRows, any_of, array_rows, table_of
from common.unit_of_work import SessionMaker
from product_svc import domain
from product_svc.models import (
    CancelledOrder,
    Category,
    Inbox,
    Inventory,
    Outbox,
    Product,
    ProductImage,
    Reservation,
)
from schemas.envelope import Envelope
from schemas.ids import new_id
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
    StockReleased,
    StockReservationFailed,
    StockReserved,
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
        await _set_stock(session, command.product_id, after)
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
    sessionmaker: SessionMaker, placed: Sequence[tuple[Envelope, OrderPlaced]]
) -> None:
    """Reserve every item of each order, or none: StockReserved or StockReservationFailed.

    A run of orders (each another order) is served in the order it came, from one lock of every
    product it names: the stock one order leaves is what the next one finds. An order already
    cancelled (its OrderPlaced re-driven or redelivered late) reserves nothing and publishes
    nothing: order_svc has it Cancelled.
    """
    async with sessionmaker.begin() as session:
        fresh = await first_deliveries(session, Inbox, placed)
        if not fresh:
            return
        reserved_before, cancelled = await _reserved_or_cancelled(
            session, [event.order_id for _, event in fresh]
        )
        for _, event in fresh:
            if event.order_id in cancelled:
                log.info("order %s was cancelled before: it reserves nothing", event.order_id)
        wanted = {
            event.order_id: domain.merge(event.items)
            for _, event in fresh
            # placed again under another message id, or cancelled already
            if event.order_id not in reserved_before | cancelled
        }
        stock = await _lock_stock(
            session, {item.product_id for items in wanted.values() for item in items}
        )
        stock_after: dict[UUID, int] = {}
        reservations: list[dict[str, Any]] = []
        for envelope, event in fresh:
            if event.order_id not in wanted:
                continue
            outcome = domain.reserve(stock, wanted[event.order_id])
            if isinstance(outcome, domain.Shortage):
                log.info("order %s is short of stock: %s", event.order_id, outcome.lines)
                failed = StockReservationFailed(
                    order_id=event.order_id, user_id=event.user_id, shortages=outcome.lines
                )
                stage(session, Outbox, failed, cause=envelope)
                continue
            stock.update(outcome.stock_after)
            stock_after.update(outcome.stock_after)
            _stage_reservation(session, envelope, event, outcome)
            reservations.extend(
                {
                    "id": new_id(),
                    "order_id": event.order_id,
                    "product_id": item.product_id,
                    "quantity": item.quantity,
                }
                for item in outcome.items
            )
        if stock_after:
            await _set_stocks(session, stock_after)
            await _ADD_RESERVATIONS.execute(session, reservations)


def _stage_reservation(
    session: AsyncSession, envelope: Envelope, event: OrderPlaced, outcome: domain.Reserved
) -> None:
    for item in outcome.items:
        changed = StockChanged(
            product_id=item.product_id,
            change=-item.quantity,
            stock=outcome.stock_after[item.product_id],
            reason=domain.ORDER_PLACED,
            order_id=event.order_id,
        )
        stage(session, Outbox, changed, cause=envelope)
    reserved = StockReserved(
        order_id=event.order_id,
        user_id=event.user_id,
        items=outcome.items,
        total_price=event.total_price,
        payment_method_id=event.payment_method_id,
    )
    stage(session, Outbox, reserved, cause=envelope)


async def release_stock(
    sessionmaker: SessionMaker, cancelled: Sequence[tuple[Envelope, OrderCancelled]]
) -> None:
    """Give back what each cancelled order holds; an order that holds nothing changes nothing
    but is remembered, so that its OrderPlaced, should it come later, reserves nothing."""
    async with sessionmaker.begin() as session:
        fresh = await first_deliveries(session, Inbox, cancelled)
        if not fresh:
            return
        await _REMEMBER_CANCELLED.execute(
            session, {"order_id": [event.order_id for _, event in fresh]}
        )
        held = await _LOCK_HELD.rows(session, {"orders": [event.order_id for _, event in fresh]})
        if not held:
            return
        held_by: dict[UUID, list[Any]] = {}
        for reservation in held:
            held_by.setdefault(reservation.order_id, []).append(reservation)
        stock = await _lock_stock(session, {reservation.product_id for reservation in held})
        stock_after: dict[UUID, int] = {}
        for envelope, event in fresh:
            for reservation in held_by.get(event.order_id, ()):
                # Within STOCK_MAX: a restock leaves room for what orders hold.
                after = domain.apply_change(stock[reservation.product_id], reservation.quantity)
                stock[reservation.product_id] = stock_after[reservation.product_id] = after
                changed = StockChanged(
                    product_id=reservation.product_id,
                    change=reservation.quantity,
                    stock=after,
                    reason=domain.ORDER_CANCELLED,
                    order_id=event.order_id,
                )
                stage(session, Outbox, changed, cause=envelope)
            if event.order_id in held_by:
                released = StockReleased(
                    order_id=event.order_id,
                    user_id=event.user_id,
                    items=tuple(
                        ItemQuantity(product_id=r.product_id, quantity=r.quantity)
                        for r in held_by[event.order_id]
                    ),
                )
                stage(session, Outbox, released, cause=envelope)
        await _set_stocks(session, stock_after)
        await _RELEASE.execute(session, {"reservations": [reservation.id for reservation in held]})


async def _category_exists(session: AsyncSession, category_id: UUID | None) -> bool:
    return category_id is None or await session.get(Category, category_id) is not None


_RESERVATIONS = table_of(Reservation)
_CANCELLED = table_of(CancelledOrder)
_RESERVED_OR_CANCELLED = Direct(
    union(
        select(_RESERVATIONS.c.order_id, false().label("cancelled")).where(
            any_of(_RESERVATIONS.c.order_id, "orders")
        ),
        select(_CANCELLED.c.order_id, true().label("cancelled")).where(
            any_of(_CANCELLED.c.order_id, "orders")
        ),
    )
)
"""Of the orders, those holding a reservation (``cancelled`` false) and those cancelled."""
_REMEMBER_CANCELLED = Direct(
    insert(_CANCELLED)
    .from_select(["order_id"], select(array_rows({"order_id": Uuid}).c.order_id))
    .on_conflict_do_nothing()
)
_LOCK_HELD = Direct(
    select(
        _RESERVATIONS.c.id,
        _RESERVATIONS.c.order_id,
        _RESERVATIONS.c.product_id,
        _RESERVATIONS.c.quantity,
    )
    .where(any_of(_RESERVATIONS.c.order_id, "orders"), _RESERVATIONS.c.released.is_(False))
    .order_by(_RESERVATIONS.c.product_id)
    .with_for_update()
)
"""The reservations the orders still hold, locked."""
_RELEASE = Direct(
    update(_RESERVATIONS)
    .where(any_of(_RESERVATIONS.c.id, "reservations"))
    .values(released=True, released_at=func.now())
)
_LOCK_STOCK = Direct(
    select(table_of(Inventory).c.product_id, table_of(Inventory).c.stock)
    .where(any_of(table_of(Inventory).c.product_id, "products"))
    .order_by(table_of(Inventory).c.product_id)
    .with_for_update()
)
_ADD_RESERVATIONS = InsertRows(_RESERVATIONS)


async def _reserved_or_cancelled(
    session: AsyncSession, order_ids: list[UUID]
) -> tuple[set[UUID], set[UUID]]:
    """Which of the orders hold a reservation already, and which were cancelled."""
    rows = await _RESERVED_OR_CANCELLED.rows(session, {"orders": order_ids})
    return (
        {row.order_id for row in rows if not row.cancelled},
        {row.order_id for row in rows if row.cancelled},
    )


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
    rows = await _LOCK_STOCK.rows(session, {"products": list(set(product_ids))})
    return {product_id: stock for product_id, stock in rows}


async def _set_stock(session: AsyncSession, product_id: UUID, stock: int) -> None:
    await _set_stocks(session, {product_id: stock})


_SET_STOCKS = UpdateRows(table_of(Inventory), match="product_id")


async def _set_stocks(session: AsyncSession, stock: Mapping[UUID, int]) -> None:
    """Set several products' stock with one statement (none for no product)."""
    await _SET_STOCKS.execute(
        session, [{"product_id": product, "stock": value} for product, value in stock.items()]
    )
