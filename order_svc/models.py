"""order_svc's tables: those of the seed (orders, order_items, order_status), its read copy of
product prices, the status history, its outbox and inbox."""

from datetime import datetime
from decimal import Decimal
from uuid import UUID, uuid4

from sqlalchemy import DateTime, ForeignKey, Index, Numeric, String, Text, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.inbox import InboxMixin
from common.outbox import OutboxMixin
from schemas.ids import new_id


class Base(DeclarativeBase):
    pass


class OrderStatus(Base):
    __tablename__ = "order_status"
    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    name: Mapped[str] = mapped_column(String(50), unique=True)


class Order(Base):
    __tablename__ = "orders"
    # Keyset pagination, newest first, over everyone's orders or one user's.
    __table_args__ = (
        Index("ix_orders_created_at_id", "created_at", "id"),
        Index("ix_orders_user_id_created_at_id", "user_id", "created_at", "id"),
    )
    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    user_id: Mapped[UUID]
    total_price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    status_id: Mapped[UUID] = mapped_column(ForeignKey("order_status.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    payment_method_id: Mapped[UUID]
    address_id: Mapped[UUID | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OrderItem(Base):
    """One line per product: duplicate lines of a command are merged before they are stored."""

    __tablename__ = "order_items"
    __table_args__ = (
        UniqueConstraint("order_id", "product_id", name="uq_order_items_order_id_product_id"),
    )
    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    order_id: Mapped[UUID] = mapped_column(ForeignKey("orders.id"))
    product_id: Mapped[UUID] = mapped_column(index=True)
    quantity: Mapped[int]
    unit_price: Mapped[Decimal] = mapped_column(Numeric(10, 2))


class OrderStatusHistory(Base):
    __tablename__ = "order_status_history"
    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    order_id: Mapped[UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    status: Mapped[str] = mapped_column(String(50))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ProductPrice(Base):
    """The read copy of the catalog's prices, kept from products.events."""

    __tablename__ = "product_prices"
    product_id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Outbox(OutboxMixin, Base):
    pass


class Inbox(InboxMixin, Base):
    pass
