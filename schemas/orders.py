"""Contracts owned by order_svc."""

from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import Command, Event, Money, register
from schemas.products import ItemQuantity
from schemas.topics import ORDERS_COMMANDS, ORDERS_EVENTS

PENDING, PAID, SHIPPED, CANCELLED = "Pending", "Paid", "Shipped", "Cancelled"
ORDER_STATUSES = (PENDING, PAID, SHIPPED, CANCELLED)


class _OrderCommand(Command):
    TOPIC = ORDERS_COMMANDS
    KEY_FIELD: ClassVar[str] = "order_id"


class _OrderEvent(Event):
    TOPIC = ORDERS_EVENTS
    KEY_FIELD: ClassVar[str] = "order_id"


class PricedItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    product_id: UUID
    quantity: int = Field(gt=0)
    unit_price: Money


@register
class PlaceOrder(_OrderCommand):
    """Place an order of some products, to be paid with one of the user's payment methods."""

    TYPE = "PlaceOrder"
    order_id: UUID
    user_id: UUID
    items: tuple[ItemQuantity, ...] = Field(min_length=1, max_length=100)
    payment_method_id: UUID
    address_id: UUID | None = None


@register
class CancelOrder(_OrderCommand):
    """Cancel an order that has not shipped."""

    TYPE = "CancelOrder"
    order_id: UUID
    reason: str = Field(default="Cancelled by customer", max_length=255)


@register
class ShipOrder(_OrderCommand):
    """Ship a paid order."""

    TYPE = "ShipOrder"
    order_id: UUID


@register
class OrderPlaced(_OrderEvent):
    """An order was accepted, its prices fixed: its stock is to be reserved."""

    TYPE = "OrderPlaced"
    order_id: UUID
    user_id: UUID
    items: tuple[PricedItem, ...]
    total_price: Money
    payment_method_id: UUID
    address_id: UUID | None = None


@register
class OrderRejected(_OrderEvent):
    """An order was refused as it came: an unknown product, or a quantity or total too large."""

    TYPE = "OrderRejected"
    order_id: UUID
    user_id: UUID
    reason: str


@register
class OrderPaid(_OrderEvent):
    """An order's payment went through."""

    TYPE = "OrderPaid"
    order_id: UUID
    user_id: UUID
    total_price: Money


@register
class OrderCancelled(_OrderEvent):
    """The order will not complete. Each service undoes its own part from its own records:
    product_svc releases a reservation it holds, payment_svc refunds a payment it took (and
    declines to charge later, should the reservation arrive after the cancellation)."""

    TYPE = "OrderCancelled"
    order_id: UUID
    user_id: UUID
    reason: str
    items: tuple[ItemQuantity, ...]


@register
class OrderShipped(_OrderEvent):
    """An order shipped."""

    TYPE = "OrderShipped"
    order_id: UUID
    user_id: UUID
