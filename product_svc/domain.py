"""The stock rules: an order reserves all of its items or none, and stock stays between zero and
STOCK_MAX."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from schemas.products import STOCK_MAX, ItemQuantity, Shortage

RESTOCK = "Restock"
ORDER_PLACED = "Order Placed"
ORDER_CANCELLED = "Order Cancelled"


class Line(Protocol):
    @property
    def product_id(self) -> UUID: ...
    @property
    def quantity(self) -> int: ...


@dataclass(frozen=True)
class Reserved:
    """Every item is available: the quantities taken and each product's stock afterwards."""

    items: tuple[ItemQuantity, ...]
    stock_after: Mapping[UUID, int]


@dataclass(frozen=True)
class OutOfStock:
    """Some items are not available in the quantity asked (an unknown product has none): a
    shortage for each; nothing is taken."""

    shortages: tuple[Shortage, ...]


class StockOutOfRangeError(ValueError):
    """The change would take the stock below zero or, with what orders hold, above STOCK_MAX."""


def merge_lines(items: Iterable[Line]) -> tuple[ItemQuantity, ...]:
    """One line per product, quantities added up, in product id order (the locking order)."""
    totals: dict[UUID, int] = {}
    for item in items:
        totals[item.product_id] = totals.get(item.product_id, 0) + item.quantity
    return tuple(
        ItemQuantity(product_id=product_id, quantity=totals[product_id])
        for product_id in sorted(totals)
    )


def reserve(stock: Mapping[UUID, int], items: Iterable[Line]) -> Reserved | OutOfStock:
    """Take every item from ``stock`` or, if any is out of stock, nothing."""
    wanted = merge_lines(items)
    shortages = tuple(
        Shortage(
            product_id=item.product_id,
            requested=item.quantity,
            available=stock.get(item.product_id, 0),
        )
        for item in wanted
        if stock.get(item.product_id, 0) < item.quantity
    )
    if shortages:
        return OutOfStock(shortages)
    return Reserved(
        items=wanted,
        stock_after={item.product_id: stock[item.product_id] - item.quantity for item in wanted},
    )


def apply_change(stock: int, change: int, held: int = 0) -> int:
    """The stock after a restock or correction: never below zero, and never so high that giving
    back what orders hold (``held``) would take it above STOCK_MAX."""
    after = stock + change
    if after < 0:
        raise StockOutOfRangeError(f"stock {stock} cannot change by {change}: below zero")
    if after + held > STOCK_MAX:
        raise StockOutOfRangeError(
            f"stock {stock} cannot change by {change}: with {held} held by orders it would pass"
            f" the maximum of {STOCK_MAX}"
        )
    return after
