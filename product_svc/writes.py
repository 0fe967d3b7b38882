"""What a product_svc run of reservations or releases writes: the stock it leaves, the
reservations it adds and those it releases, collected as the run goes (:class:`Writes`) and
written at its end with a statement a table; its events are staged in the outbox as they come."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from common.outbox import stage
from product_svc import domain, statements
from product_svc.models import Outbox
from schemas.envelope import Envelope, Message
from schemas.ids import new_id
from schemas.orders import OrderCancelled, OrderPlaced
from schemas.products import (
    ItemQuantity,
    StockChanged,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)


class Writes:
    """What a run records, written by :meth:`execute` at its end."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.stock: dict[UUID, int] = {}
        self.reservations: list[dict[str, Any]] = []
        self.to_release: list[UUID] = []

    def reserved(self, envelope: Envelope, event: OrderPlaced, outcome: domain.Reserved) -> None:
        """An order's items taken: each product's stock change, then StockReserved."""
        self.stock.update(outcome.stock_after)
        for item in outcome.items:
            changed = StockChanged(
                product_id=item.product_id,
                change=-item.quantity,
                stock=outcome.stock_after[item.product_id],
                reason=domain.ORDER_PLACED,
                order_id=event.order_id,
            )
            self._stage(changed, envelope)
        reserved = StockReserved(
            order_id=event.order_id,
            user_id=event.user_id,
            items=outcome.items,
            total_price=event.total_price,
            payment_method_id=event.payment_method_id,
        )
        self._stage(reserved, envelope)
        self.reservations.extend(
            {
                "id": new_id(),
                "order_id": event.order_id,
                "product_id": item.product_id,
                "quantity": item.quantity,
            }
            for item in outcome.items
        )

    def out_of_stock(
        self, envelope: Envelope, event: OrderPlaced, outcome: domain.OutOfStock
    ) -> None:
        failed = StockReservationFailed(
            order_id=event.order_id, user_id=event.user_id, shortages=outcome.shortages
        )
        self._stage(failed, envelope)

    def gave_back(
        self, envelope: Envelope, event: OrderCancelled, reservation: Any, stock: int
    ) -> None:
        """A reservation of a cancelled order released, its product's stock now ``stock``."""
        self.stock[reservation.product_id] = stock
        self.to_release.append(reservation.id)
        changed = StockChanged(
            product_id=reservation.product_id,
            change=reservation.quantity,
            stock=stock,
            reason=domain.ORDER_CANCELLED,
            order_id=event.order_id,
        )
        self._stage(changed, envelope)

    def released(self, envelope: Envelope, event: OrderCancelled, held: Sequence[Any]) -> None:
        """Every reservation of a cancelled order given back."""
        released = StockReleased(
            order_id=event.order_id,
            user_id=event.user_id,
            items=tuple(ItemQuantity(product_id=r.product_id, quantity=r.quantity) for r in held),
        )
        self._stage(released, envelope)

    def _stage(self, message: Message, cause: Envelope) -> None:
        stage(self._session, Outbox, message, cause=cause)

    async def execute(self) -> None:
        await set_stocks(self._session, self.stock)
        await statements.ADD_RESERVATIONS.execute(self._session, self.reservations)
        if self.to_release:
            await statements.RELEASE.execute(self._session, {"reservations": self.to_release})


async def set_stocks(session: AsyncSession, stock: dict[UUID, int]) -> None:
    """Set several products' stock with one statement (none for no product)."""
    await statements.SET_STOCKS.execute(
        session, [{"product_id": product, "stock": value} for product, value in stock.items()]
    )
