"""The order's rules, as pure code: pricing a new order and the status state machine."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from schemas.orders import (
    CANCELLED,
    PAID,
    PENDING,
    SHIPPED,
    OrderCancelled,
    OrderPaid,
    OrderShipped,
    PricedItem,
)
from schemas.products import ItemQuantity, Shortage

MAX_TOTAL = Decimal("99999999.99")
"""The largest amount DECIMAL(10,2) (and the Money contract) holds."""
MAX_QUANTITY = 2**31 - 1
"""The largest quantity an order line's INTEGER column holds."""

ALLOWED_TRANSITIONS = frozenset(
    {(PENDING, PAID), (PENDING, CANCELLED), (PAID, CANCELLED), (PAID, SHIPPED)}
)

StatusEvent = OrderPaid | OrderCancelled | OrderShipped


@dataclass(frozen=True)
class Priced:
    items: tuple[PricedItem, ...]
    total: Decimal


@dataclass(frozen=True)
class Rejected:
    reason: str
    unknown_products: tuple[UUID, ...] = ()


def merge_lines(items: Iterable[ItemQuantity]) -> tuple[ItemQuantity, ...]:
    """One line per product, quantities added, in the order products first appear."""
    quantities: dict[UUID, int] = {}
    for item in items:
        quantities[item.product_id] = quantities.get(item.product_id, 0) + item.quantity
    return tuple(
        ItemQuantity(product_id=product_id, quantity=quantity)
        for product_id, quantity in quantities.items()
    )


def price(items: Iterable[ItemQuantity], prices: Mapping[UUID, Decimal]) -> Priced | Rejected:
    """Price the order's lines (merged per product) from the known prices, or say why not."""
    lines = merge_lines(items)
    unknown = tuple(line.product_id for line in lines if line.product_id not in prices)
    if unknown:
        return Rejected(f"unknown products: {', '.join(map(str, unknown))}", unknown)
    too_many = [line.product_id for line in lines if line.quantity > MAX_QUANTITY]
    if too_many:
        return Rejected(f"quantity above {MAX_QUANTITY}: {', '.join(map(str, too_many))}")
    priced = tuple(
        PricedItem(
            product_id=line.product_id, quantity=line.quantity, unit_price=prices[line.product_id]
        )
        for line in lines
    )
    total = sum((item.unit_price * item.quantity for item in priced), Decimal("0.00"))
    if total > MAX_TOTAL:
        return Rejected(f"total {total} exceeds the maximum of {MAX_TOTAL}")
    return Priced(priced, total)


@dataclass(frozen=True)
class OrderFacts:
    """What the state machine needs to know about an order to change its status."""

    order_id: UUID
    user_id: UUID
    status: str
    total_price: Decimal
    items: tuple[ItemQuantity, ...]


def allowed(current: str, target: str) -> bool:
    return (current, target) in ALLOWED_TRANSITIONS


def transition(
    order: OrderFacts, target: str, reason: str | None = None, *, only_from: str | None = None
) -> StatusEvent | None:
    """The event that moving ``order`` to ``target`` publishes; None when it is not allowed.

    ``only_from`` narrows the allowed starting status: a saga step's outcome (stock or payment)
    concerns a Pending order only, never one that has moved on since.
    """
    if only_from is not None and order.status != only_from:
        return None
    if not allowed(order.status, target):
        return None
    if target == PAID:
        return OrderPaid(
            order_id=order.order_id, user_id=order.user_id, total_price=order.total_price
        )
    if target == SHIPPED:
        return OrderShipped(order_id=order.order_id, user_id=order.user_id)
    return OrderCancelled(
        order_id=order.order_id,
        user_id=order.user_id,
        reason=reason or "cancelled",
        items=order.items,
    )


def out_of_stock_reason(shortages: Iterable[Shortage], names: Mapping[UUID, str]) -> str:
    """``out of stock: Mug (requested 3, available 1), ...`` naming products where known."""
    parts = [
        f"{names.get(s.product_id, str(s.product_id))} "
        f"(requested {s.requested}, available {s.available})"
        for s in shortages
    ]
    return f"out of stock: {', '.join(parts) or 'no details'}"


def payment_failed_reason(reason: str) -> str:
    return f"payment failed: {reason}"
