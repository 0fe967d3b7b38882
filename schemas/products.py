"""Contracts owned by product_svc: the catalog (products.*) and the stock (inventory.events)."""

from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import Command, Event, Money, register
from schemas.topics import INVENTORY_EVENTS, PRODUCTS_COMMANDS, PRODUCTS_EVENTS

STOCK_MAX = 2**31 - 1
"""The most a product's stock holds: inventory.stock (and the ledger's columns) are INTEGER."""


class _ProductCommand(Command):
    TOPIC = PRODUCTS_COMMANDS
    KEY_FIELD: ClassVar[str] = "product_id"


class _CatalogEvent(Event):
    TOPIC = PRODUCTS_EVENTS
    KEY_FIELD: ClassVar[str] = "product_id"


class _StockEvent(Event):
    TOPIC = INVENTORY_EVENTS
    KEY_FIELD: ClassVar[str] = "order_id"


@register
class CreateCategory(_ProductCommand):
    """Create a category of the catalog."""

    TYPE = "CreateCategory"
    KEY_FIELD = "category_id"
    category_id: UUID
    name: str = Field(min_length=1, max_length=255)


@register
class CreateProduct(_ProductCommand):
    """Create a product, with its price and first stock."""

    TYPE = "CreateProduct"
    product_id: UUID
    name: str = Field(min_length=1, max_length=255)
    description: str = ""
    price: Money
    category_id: UUID | None = None
    initial_stock: int = Field(default=0, ge=0, le=STOCK_MAX)


@register
class UpdateProduct(_ProductCommand):
    """Change a product's name, description, price or category; a field left out stays."""

    TYPE = "UpdateProduct"
    product_id: UUID
    name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    price: Money | None = None
    category_id: UUID | None = None


@register
class AddProductImage(_ProductCommand):
    """Add an image to a product."""

    TYPE = "AddProductImage"
    image_id: UUID
    product_id: UUID
    url: str = Field(min_length=1, max_length=2048)


@register
class RestockProduct(_ProductCommand):
    """Add units to a product's stock, or take them with a negative change."""

    TYPE = "RestockProduct"
    product_id: UUID
    change: int = Field(ge=-STOCK_MAX, le=STOCK_MAX)
    """Units added, or taken with a negative change. One within these bounds may still be
    refused: the stock after it must stay within 0..STOCK_MAX."""
    reason: str = Field(default="Restock", min_length=1, max_length=50)


@register
class CategoryCreated(_CatalogEvent):
    """A category was created."""

    TYPE = "CategoryCreated"
    KEY_FIELD = "category_id"
    category_id: UUID
    name: str


@register
class ProductCreated(_CatalogEvent):
    """A product was created."""

    TYPE = "ProductCreated"
    product_id: UUID
    name: str
    description: str
    price: Money
    category_id: UUID | None


@register
class ProductUpdated(_CatalogEvent):
    """A product changed; the message carries all of it as it is now."""

    TYPE = "ProductUpdated"
    product_id: UUID
    name: str
    description: str
    price: Money
    category_id: UUID | None


@register
class ProductImageAdded(_CatalogEvent):
    """An image was added to a product."""

    TYPE = "ProductImageAdded"
    image_id: UUID
    product_id: UUID
    url: str


class ItemQuantity(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    product_id: UUID
    quantity: int = Field(gt=0)


class Shortage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    product_id: UUID
    requested: int
    available: int


@register
class StockChanged(_StockEvent):
    """Every change of a product's stock; ``stock`` is the level after the change."""

    TYPE = "StockChanged"
    KEY_FIELD = "product_id"
    product_id: UUID
    change: int = Field(ge=-STOCK_MAX, le=STOCK_MAX)
    stock: int = Field(ge=0, le=STOCK_MAX)
    reason: str = Field(max_length=50)
    order_id: UUID | None = None


@register
class StockReserved(_StockEvent):
    """Every item of an order was reserved: the order is to be charged."""

    TYPE = "StockReserved"
    order_id: UUID
    user_id: UUID
    items: tuple[ItemQuantity, ...]
    total_price: Money
    payment_method_id: UUID


@register
class StockReservationFailed(_StockEvent):
    """An order could not be reserved: the shortages say which items were short."""

    TYPE = "StockReservationFailed"
    order_id: UUID
    user_id: UUID
    shortages: tuple[Shortage, ...]


@register
class StockReleased(_StockEvent):
    """An order's reserved units went back to stock (the order was cancelled)."""

    TYPE = "StockReleased"
    order_id: UUID
    user_id: UUID
    items: tuple[ItemQuantity, ...]
