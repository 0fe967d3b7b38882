"""What an order_svc run writes: its orders' items and new statuses, collected as the run goes
(:class:`Writes`) and written at its end with a statement a table; each status's history row
and event are deferred to the end of the unit of work."""

from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from common.outbox import stage
from common.statements import defer_insert
from order_svc import domain, statements
from order_svc.models import Outbox
from schemas.envelope import Envelope
from schemas.orders import CANCELLED, PENDING, OrderPlaced, OrderRejected, PlaceOrder


class Writes:
    """What a run records, written by :meth:`execute` at its end."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.items: list[dict[str, Any]] = []
        self.statuses: list[tuple[UUID, str, str | None]] = []

    def placed(self, envelope: Envelope, command: PlaceOrder, outcome: domain.Priced) -> None:
        """A new order, Pending: its items and OrderPlaced."""
        self._history(command.order_id, PENDING, None)
        self.items.extend(
            {"order_id": command.order_id, **item.model_dump(mode="python")}
            for item in outcome.items
        )
        placed = OrderPlaced(
            order_id=command.order_id,
            user_id=command.user_id,
            items=outcome.items,
            total_price=outcome.total,
            payment_method_id=command.payment_method_id,
            address_id=command.address_id,
        )
        stage(self._session, Outbox, placed, cause=envelope)

    def rejected(self, envelope: Envelope, command: PlaceOrder, outcome: domain.Rejected) -> None:
        """A new order, Cancelled at once: OrderRejected."""
        self._history(command.order_id, CANCELLED, outcome.reason)
        rejected = OrderRejected(
            order_id=command.order_id, user_id=command.user_id, reason=outcome.reason
        )
        stage(self._session, Outbox, rejected, cause=envelope)

    def moved(
        self, envelope: Envelope, event: domain.StatusEvent, status: str, reason: str | None
    ) -> None:
        """An order moved to ``status``: its new status, its history and its event."""
        self.statuses.append((event.order_id, status, reason))
        self._history(event.order_id, status, reason)
        stage(self._session, Outbox, event, cause=envelope)

    def _history(self, order_id: UUID, status: str, reason: str | None) -> None:
        row = {"order_id": order_id, "status": status, "reason": reason}
        defer_insert(self._session, statements.HISTORY, row)

    async def execute(self) -> None:
        await statements.ADD_ITEMS.execute(self._session, self.items)
        if self.statuses:
            await statements.SET_STATUSES.execute(
                self._session,
                {
                    "order_id": [order_id for order_id, _, _ in self.statuses],
                    "status": [status for _, status, _ in self.statuses],
                    "reason": [
                        reason if status == CANCELLED else None
                        for _, status, reason in self.statuses
                    ],
                },
            )
