"""inventory_svc's tables: the seed's inventory_movements (the stock ledger), outbox and inbox."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, DateTime, Identity, Index, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.inbox import InboxMixin
from common.outbox import OutboxMixin
from schemas.ids import new_id


class Base(DeclarativeBase):
    pass


class InventoryMovement(Base):
    __tablename__ = "inventory_movements"
    __table_args__ = (Index("ix_inventory_movements_product_id_seq", "product_id", "seq"),)
    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    """The order in which movements were recorded: a product's latest has the highest seq."""
    product_id: Mapped[UUID]
    change: Mapped[int]
    reason: Mapped[str] = mapped_column(String(50))
    order_id: Mapped[UUID | None]
    stock_after: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Outbox(OutboxMixin, Base):
    pass


class Inbox(InboxMixin, Base):
    pass
