"""payment_svc's tables: those of the seed (payments, payment_methods, transactions), the orders
it must not charge (cancelled before their stock was reserved), the charges it has begun and not
yet recorded, its outbox and inbox."""

from datetime import datetime
from decimal import Decimal
from uuid import UUID, uuid4

from sqlalchemy import DateTime, ForeignKey, Numeric, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.inbox import InboxMixin
from common.outbox import OutboxMixin
from schemas.ids import new_id


class Base(DeclarativeBase):
    pass


class PaymentMethod(Base):
    __tablename__ = "payment_methods"
    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    user_id: Mapped[UUID] = mapped_column(index=True)
    method: Mapped[str] = mapped_column(String(50))
    token: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Payment(Base):
    __tablename__ = "payments"
    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    # Unique: a payment is never taken twice for one order.
    order_id: Mapped[UUID] = mapped_column(unique=True)
    user_id: Mapped[UUID] = mapped_column(index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    status: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Transaction(Base):
    __tablename__ = "transactions"
    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    payment_id: Mapped[UUID] = mapped_column(ForeignKey("payments.id"), index=True)
    gateway_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    status: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CancelledOrder(Base):
    """An order cancelled before or after its payment: a later StockReserved is not charged."""

    __tablename__ = "cancelled_orders"
    order_id: Mapped[UUID] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    correlation_id: Mapped[UUID | None]
    causation_id: Mapped[UUID | None]
    """The OrderCancelled: what a refund the sweep makes for it is caused by."""
    reason: Mapped[str | None] = mapped_column(String(255))
    """Why it was cancelled: the reason of a refund the sweep makes for it (None: remembered
    before reasons were, read as ``schemas.payments.REFUNDED_BEFORE_V2``)."""


class ChargeAttempt(Base):
    """A charge payment_svc is about to ask the provider for, committed before it asks: until
    the payment is recorded (and this row deleted with it), the provider may have moved money
    that payment_svc has no record of. A delivery, a cancellation or the sweep settles it from
    the provider by its key."""

    __tablename__ = "charge_attempts"
    order_id: Mapped[UUID] = mapped_column(primary_key=True)
    user_id: Mapped[UUID]
    amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    correlation_id: Mapped[UUID]
    causation_id: Mapped[UUID]
    """The StockReserved that began it: what its payment's events are caused by."""
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


class Outbox(OutboxMixin, Base):
    pass


class Inbox(InboxMixin, Base):
    pass
