"""inventory_svc's use cases; each is one transaction (inbox check, change)."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import select, tuple_

from common.db import SessionMaker
from common.inbox import first_delivery
from inventory_svc.models import Inbox, InventoryMovement
from schemas.envelope import Envelope
from schemas.products import StockChanged


async def record_movement(
    sessionmaker: SessionMaker, envelope: Envelope, event: StockChanged
) -> None:
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        session.add(
            InventoryMovement(
                product_id=event.product_id,
                change=event.change,
                reason=event.reason,
                order_id=event.order_id,
                stock_after=event.stock,
            )
        )


async def list_movements(
    sessionmaker: SessionMaker,
    product_id: UUID,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[InventoryMovement]:
    """A product's movements in ledger order (created_at, then id), those after ``after``."""
    query = select(InventoryMovement).where(InventoryMovement.product_id == product_id)
    if after is not None:
        query = query.where(tuple_(InventoryMovement.created_at, InventoryMovement.id) > after)
    query = query.order_by(InventoryMovement.created_at, InventoryMovement.id).limit(limit)
    async with sessionmaker() as session:
        return list(await session.scalars(query))
