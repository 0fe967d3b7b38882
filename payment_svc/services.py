"""payment_svc's use cases; each is one transaction (inbox check, change, outbox rows)."""

import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Select, Text, Uuid, cast, exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import (
    Direct,
    InsertRows,
    SessionMaker,
    UpdateRows,
    any_of,
    array_rows,
    table_of,
)
from common.inbox import first_deliveries, first_delivery
from common.outbox import stage
from payment_svc import domain
from payment_svc.models import CancelledOrder, Inbox, Outbox, Payment, PaymentMethod, Transaction
from payment_svc.ports import PaymentProvider
from schemas.envelope import Envelope
from schemas.ids import new_id
from schemas.orders import OrderCancelled
from schemas.payments import (
    AddPaymentMethod,
    PaymentFailed,
    PaymentMethodAdded,
    PaymentRefunded,
    PaymentSucceeded,
)
from schemas.products import StockReserved

log = logging.getLogger(__name__)

_ORDER_LOCKS = 0x5E0B_0003
"""First key of the two-key advisory locks that serialise the messages of one order."""


class RefundRefusedError(RuntimeError):
    """The provider refused a refund; the message is retried, then dead-lettered."""


async def add_payment_method(
    sessionmaker: SessionMaker, envelope: Envelope, command: AddPaymentMethod
) -> None:
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        added = await session.scalar(
            insert(PaymentMethod)
            .values(
                id=command.payment_method_id,
                user_id=command.user_id,
                method=command.method,
                token=command.token,
            )
            .on_conflict_do_nothing()
            .returning(PaymentMethod.id)
        )
        if added is None:
            return  # the same command sent again under a new message id
        event = PaymentMethodAdded(
            payment_method_id=command.payment_method_id,
            user_id=command.user_id,
            method=command.method,
        )
        stage(session, Outbox, event, cause=envelope)


async def charge_order(
    sessionmaker: SessionMaker,
    provider: PaymentProvider,
    reserved: Sequence[tuple[Envelope, StockReserved]],
) -> None:
    """Charge orders whose stock is reserved: each once, and never after its cancellation."""
    async with sessionmaker.begin() as session:
        fresh = await first_deliveries(session, Inbox, reserved)
        if not fresh:
            return
        await _lock_orders(session, [event.order_id for _, event in fresh])
        found = await _CHARGE_FACTS.rows(
            session,
            {
                "order_id": [event.order_id for _, event in fresh],
                "method_id": [event.payment_method_id for _, event in fresh],
            },
        )
        facts = {row.order_id: row for row in found}
        payments: list[dict[str, Any]] = []
        charges: list[dict[str, Any]] = []
        for envelope, event in fresh:
            order = facts[event.order_id]
            plan = domain.plan_charge(
                has_payment=order.has_payment,
                cancelled=order.cancelled,
                buyer=event.user_id,
                method_owner=order.method_owner,
            )
            if isinstance(plan, domain.Skip):
                log.info("not charging order %s: %s", event.order_id, plan.why)
                continue
            payment_id = new_id()
            if isinstance(plan, domain.Refuse):
                payments.append(_payment(payment_id, event, domain.FAILED))
                stage(session, Outbox, _failed(event, plan.reason), cause=envelope)
                continue
            assert order.token is not None  # the plan charges only the buyer's own method
            # The provider is asked inside the transaction: the simulator is local. A real one
            # would be too, safely: the key is the order's, so if this transaction rolls back
            # after a charge, the retry sends the same key and the provider answers with the
            # first charge instead of taking the money again.
            result = await provider.charge(
                idempotency_key=domain.charge_key(event.order_id),
                amount=event.total_price,
                token=order.token,
            )
            status = domain.PAID if result.approved else domain.FAILED
            payments.append(_payment(payment_id, event, status))
            charges.append(
                {
                    "id": new_id(),
                    "payment_id": payment_id,
                    "gateway_id": result.reference,
                    "kind": domain.CHARGE,
                    "amount": event.total_price,
                    "status": status,
                }
            )
            if not result.approved:
                reason = result.decline_reason or "declined by the payment provider"
                stage(session, Outbox, _failed(event, reason), cause=envelope)
                continue
            succeeded = PaymentSucceeded(
                payment_id=payment_id,
                order_id=event.order_id,
                user_id=event.user_id,
                amount=event.total_price,
                gateway_id=result.reference,
            )
            stage(session, Outbox, succeeded, cause=envelope)
        # Statements, not ORM objects (a flush costs several times an insert); a payment's row
        # goes before its charge's, which refers to it.
        await _ADD_PAYMENTS.execute(session, payments)
        await _ADD_TRANSACTIONS.execute(session, charges)


_PAYMENTS = table_of(Payment)
_TRANSACTIONS = table_of(Transaction)
_ADD_PAYMENTS = InsertRows(_PAYMENTS)
_ADD_TRANSACTIONS = InsertRows(_TRANSACTIONS)


def _payment(payment_id: UUID, event: StockReserved, status: str) -> dict[str, Any]:
    """The order's payment row, with its final status."""
    return {
        "id": payment_id,
        "order_id": event.order_id,
        "user_id": event.user_id,
        "amount": event.total_price,
        "status": status,
    }


async def refund_order(
    sessionmaker: SessionMaker,
    provider: PaymentProvider,
    cancelled: Sequence[tuple[Envelope, OrderCancelled]],
) -> None:
    """Refund each cancelled order's payment once; remember the cancellation in any case, so
    that a reservation arriving after it is not charged."""
    async with sessionmaker.begin() as session:
        fresh = await first_deliveries(session, Inbox, cancelled)
        if not fresh:
            return
        order_ids = [event.order_id for _, event in fresh]
        await _lock_orders(session, order_ids)
        await _REMEMBER_CANCELLED.execute(session, {"order_id": order_ids})
        payments = {
            payment.order_id: payment
            for payment in await _LOCK_PAYMENTS.rows(session, {"orders": order_ids})
            if domain.refundable(payment.status)
        }
        if not payments:
            return
        charges = {
            charge.payment_id: charge
            for charge in await _PAID_CHARGES.rows(
                session, {"payments": [payment.id for payment in payments.values()]}
            )
        }
        refunded_payments: list[dict[str, Any]] = []
        refunds: list[dict[str, Any]] = []
        for envelope, event in fresh:
            payment = payments.get(event.order_id)
            if payment is None:
                continue
            charge = charges.get(payment.id)
            if charge is None:
                raise LookupError(f"payment {payment.id} is Paid without a successful charge")
            result = await provider.refund(
                reference=charge.gateway_id,
                amount=payment.amount,
                idempotency_key=domain.refund_key(event.order_id),
            )
            if not result.succeeded:
                raise RefundRefusedError(
                    f"refund of order {event.order_id} refused: {result.reason}"
                )
            refunded_payments.append({"id": payment.id, "status": domain.REFUNDED})
            refunds.append(
                {
                    "id": new_id(),
                    "payment_id": payment.id,
                    "gateway_id": result.reference,
                    "kind": domain.REFUND,
                    "amount": payment.amount,
                    "status": domain.REFUNDED,
                }
            )
            refunded = PaymentRefunded(
                payment_id=payment.id,
                order_id=payment.order_id,
                user_id=payment.user_id,
                amount=payment.amount,
                gateway_id=result.reference,
            )
            stage(session, Outbox, refunded, cause=envelope)
        await _SET_PAYMENT_STATUS.execute(session, refunded_payments)
        await _ADD_TRANSACTIONS.execute(session, refunds)


_REMEMBER_CANCELLED = Direct(
    insert(table_of(CancelledOrder))
    .from_select(
        ["order_id"],
        select(array_rows({"order_id": Uuid}).c.order_id),
    )
    .on_conflict_do_nothing()
)
_LOCK_PAYMENTS = Direct(
    select(
        _PAYMENTS.c.id,
        _PAYMENTS.c.order_id,
        _PAYMENTS.c.user_id,
        _PAYMENTS.c.amount,
        _PAYMENTS.c.status,
    )
    .where(any_of(_PAYMENTS.c.order_id, "orders"))
    .with_for_update()
)
_PAID_CHARGES = Direct(
    select(_TRANSACTIONS.c.payment_id, _TRANSACTIONS.c.gateway_id).where(
        any_of(_TRANSACTIONS.c.payment_id, "payments"),
        _TRANSACTIONS.c.kind == domain.CHARGE,
        _TRANSACTIONS.c.status == domain.PAID,
    )
)
_SET_PAYMENT_STATUS = UpdateRows(_PAYMENTS, match="id")


def _build_charge_facts() -> Select[tuple[UUID, bool, bool, UUID | None, str | None]]:
    orders = array_rows({"order_id": Uuid, "method_id": Uuid})
    return select(
        orders.c.order_id,
        exists().where(Payment.order_id == orders.c.order_id).label("has_payment"),
        exists().where(CancelledOrder.order_id == orders.c.order_id).label("cancelled"),
        PaymentMethod.user_id.label("method_owner"),
        PaymentMethod.token,
    ).select_from(orders.outerjoin(PaymentMethod, PaymentMethod.id == orders.c.method_id))


_CHARGE_FACTS = Direct(_build_charge_facts())
"""What each charge of a run decides on, in one query (after the orders' locks, so that a
cancellation applied concurrently is seen): a payment already made, a cancellation already
seen, and the payment method's owner and token. Bound with lists of ``order_id`` and
``method_id``."""


def _failed(event: StockReserved, reason: str) -> PaymentFailed:
    return PaymentFailed(
        order_id=event.order_id, user_id=event.user_id, amount=event.total_price, reason=reason
    )


async def _lock_orders(session: AsyncSession, order_ids: list[UUID]) -> None:
    """Serialise these orders' messages until commit, across replicas: a reservation and a
    cancellation arrive on different topics and may be applied at the same moment. The locks
    are taken in one order (no deadlock between two runs)."""
    await _LOCK_ORDERS.execute(session, {"id": sorted(order_ids)})


def _build_lock_orders() -> Select[tuple[Any]]:
    orders = array_rows({"id": Uuid})
    lock = func.pg_advisory_xact_lock(_ORDER_LOCKS, func.hashtext(cast(orders.c.id, Text)))
    return select(lock).select_from(orders)


_LOCK_ORDERS = Direct(_build_lock_orders())


async def _payment_of(session: AsyncSession, order_id: UUID) -> Payment | None:
    return await session.scalar(select(Payment).where(Payment.order_id == order_id))
