"""inventory_svc's use cases; each is one transaction (inbox check, change)."""

from common.inbox import first_delivery
from common.statements import defer_insert, table_of
from common.unit_of_work import SessionMaker
from inventory_svc.models import Inbox, InventoryMovement
from schemas.envelope import Envelope
from schemas.ids import new_id
from schemas.products import StockChanged


async def record_movement(
    sessionmaker: SessionMaker, envelope: Envelope, event: StockChanged
) -> None:
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        # Nothing reads a movement back in its own transaction: a batch writes all of its
        # movements with one statement, in the order they came.
        defer_insert(
            session,
            _MOVEMENTS,
            {
                "id": new_id(),
                "product_id": event.product_id,
                "change": event.change,
                "reason": event.reason,
                "order_id": event.order_id,
                "stock_after": event.stock,
            },
        )


_MOVEMENTS = table_of(InventoryMovement)
