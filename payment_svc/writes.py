"""What a payment_svc run writes: its payments, their transactions and events, and the charge
attempts they settle, collected as the run goes (:class:`Writes`) and written at its end with a
few statements, not ORM objects (a flush costs several times an insert)."""

from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from common.outbox import stage
from payment_svc import domain, statements
from payment_svc.models import Outbox
from payment_svc.ports import ChargeResult, RefundResult
from schemas.envelope import Envelope, Message
from schemas.ids import new_id
from schemas.payments import PaymentFailed, PaymentRefunded, PaymentSucceeded
from schemas.products import StockReserved


class Charge(NamedTuple):
    order_id: UUID
    user_id: UUID
    amount: Decimal


class Cause(NamedTuple):
    """What a payment's events are caused by: a delivery's envelope, or the ids the sweep kept
    of it."""

    correlation_id: UUID
    causation_id: UUID


def cause_of(envelope: Envelope) -> Cause:
    return Cause(envelope.correlation_id, envelope.id)


def charge_of(event: StockReserved) -> Charge:
    return Charge(event.order_id, event.user_id, event.total_price)


class Writes:
    """What a run records, written by :meth:`execute` at its end; its events are staged in the
    outbox as they are recorded."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.payments: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.transactions: list[dict[str, Any]] = []
        self.settled: list[UUID] = []

    def refused(self, charge: Charge, cause: Cause, reason: str) -> None:
        """A failed payment, without asking the provider."""
        self.payments.append(_payment(new_id(), charge, domain.FAILED))
        self._stage(_failed(charge, reason), cause)

    def charged(self, charge: Charge, cause: Cause, result: ChargeResult) -> UUID:
        """The provider's answer to a charge: Paid, or Failed (declined); settles its attempt."""
        payment_id = new_id()
        status = domain.PAID if result.approved else domain.FAILED
        self.payments.append(_payment(payment_id, charge, status))
        self.transactions.append(
            _transaction(payment_id, result.reference, domain.CHARGE, charge.amount, status)
        )
        self.settled.append(charge.order_id)
        if result.approved:
            succeeded = PaymentSucceeded(
                payment_id=payment_id,
                order_id=charge.order_id,
                user_id=charge.user_id,
                amount=charge.amount,
                gateway_id=result.reference,
            )
            self._stage(succeeded, cause)
        else:
            reason = result.decline_reason or "declined by the payment provider"
            self._stage(_failed(charge, reason), cause)
        return payment_id

    def refunded(
        self, charge: Charge, payment_id: UUID, result: RefundResult, cause: Cause, *, reason: str
    ) -> None:
        # A payment recorded in this run is written Refunded; an older one is updated.
        written = next((p for p in self.payments if p["id"] == payment_id), None)
        if written is not None:
            written["status"] = domain.REFUNDED
        else:
            self.statuses.append({"id": payment_id, "status": domain.REFUNDED})
        self.transactions.append(
            _transaction(
                payment_id, result.reference, domain.REFUND, charge.amount, domain.REFUNDED
            )
        )
        refunded = PaymentRefunded(
            payment_id=payment_id,
            order_id=charge.order_id,
            user_id=charge.user_id,
            amount=charge.amount,
            gateway_id=result.reference,
            reason=reason,
        )
        self._stage(refunded, cause)

    def _stage(self, message: Message, cause: Cause) -> None:
        stage(
            self._session,
            Outbox,
            message,
            correlation_id=cause.correlation_id,
            causation_id=cause.causation_id,
        )

    async def execute(self) -> None:
        # A payment's row goes before its transactions', which refer to it.
        await statements.ADD_PAYMENTS.execute(self._session, self.payments)
        await statements.SET_PAYMENT_STATUS.execute(self._session, self.statuses)
        await statements.ADD_TRANSACTIONS.execute(self._session, self.transactions)
        if self.settled:
            await statements.SETTLE_ATTEMPTS.execute(self._session, {"orders": self.settled})


def _payment(payment_id: UUID, charge: Charge, status: str) -> dict[str, Any]:
    """The order's payment row, with its final status."""
    return {
        "id": payment_id,
        "order_id": charge.order_id,
        "user_id": charge.user_id,
        "amount": charge.amount,
        "status": status,
    }


def _transaction(
    payment_id: UUID, reference: str, kind: str, amount: Decimal, status: str
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "payment_id": payment_id,
        "gateway_id": reference,
        "kind": kind,
        "amount": amount,
        "status": status,
    }


def _failed(charge: Charge, reason: str) -> PaymentFailed:
    return PaymentFailed(
        order_id=charge.order_id, user_id=charge.user_id, amount=charge.amount, reason=reason
    )
