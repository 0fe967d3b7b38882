"""payment_svc's use cases; each is one transaction (inbox check, change, outbox rows)."""

import logging
from uuid import UUID, uuid4

from sqlalchemy import Select, exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import SessionMaker
from common.inbox import first_delivery
from common.outbox import stage
from payment_svc import domain
from payment_svc.models import CancelledOrder, Inbox, Outbox, Payment, PaymentMethod, Transaction
from payment_svc.ports import PaymentProvider
from schemas.envelope import Envelope
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
    envelope: Envelope,
    event: StockReserved,
) -> None:
    """Charge an order whose stock is reserved: once, and never after its cancellation."""
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        await _lock_order(session, event.order_id)
        facts = (await session.execute(_charge_facts(event))).one()
        plan = domain.plan_charge(
            has_payment=facts.has_payment,
            cancelled=facts.cancelled,
            buyer=event.user_id,
            method_owner=facts.method_owner,
        )
        if isinstance(plan, domain.Skip):
            log.info("not charging order %s: %s", event.order_id, plan.why)
            return
        payment_id = uuid4()
        if isinstance(plan, domain.Refuse):
            await _record_charge(session, payment_id, event, domain.FAILED)
            stage(session, Outbox, _failed(event, plan.reason), cause=envelope)
            return
        assert facts.token is not None  # the plan charges only the buyer's own method
        # The provider is asked inside the transaction: the simulator is local. A real one would
        # be too, safely: the key is the order's, so if this transaction rolls back after a
        # charge, the retry sends the same key and the provider answers with the first charge
        # instead of taking the money again.
        result = await provider.charge(
            idempotency_key=domain.charge_key(event.order_id),
            amount=event.total_price,
            token=facts.token,
        )
        status = domain.PAID if result.approved else domain.FAILED
        await _record_charge(session, payment_id, event, status, result.reference)
        if not result.approved:
            reason = result.decline_reason or "declined by the payment provider"
            stage(session, Outbox, _failed(event, reason), cause=envelope)
            return
        succeeded = PaymentSucceeded(
            payment_id=payment_id,
            order_id=event.order_id,
            user_id=event.user_id,
            amount=event.total_price,
            gateway_id=result.reference,
        )
        stage(session, Outbox, succeeded, cause=envelope)


async def _record_charge(
    session: AsyncSession,
    payment_id: UUID,
    event: StockReserved,
    status: str,
    gateway_id: str | None = None,
) -> None:
    """The order's payment with its final status and, when the provider was asked, the charge
    transaction: statements, not ORM objects (a flush costs several times an insert)."""
    await session.execute(
        insert(Payment).values(
            id=payment_id,
            order_id=event.order_id,
            user_id=event.user_id,
            amount=event.total_price,
            status=status,
        )
    )
    if gateway_id is not None:
        await session.execute(
            insert(Transaction).values(
                id=uuid4(),
                payment_id=payment_id,
                gateway_id=gateway_id,
                kind=domain.CHARGE,
                amount=event.total_price,
                status=status,
            )
        )


async def refund_order(
    sessionmaker: SessionMaker,
    provider: PaymentProvider,
    envelope: Envelope,
    event: OrderCancelled,
) -> None:
    """Refund a cancelled order's payment once; remember the cancellation in any case, so that
    a reservation arriving after it is not charged."""
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        await _lock_order(session, event.order_id)
        await session.execute(
            insert(CancelledOrder).values(order_id=event.order_id).on_conflict_do_nothing()
        )
        payment = await _payment_of(session, event.order_id, lock=True)
        if payment is None or not domain.refundable(payment.status):
            return
        charge = await session.scalar(
            select(Transaction).where(
                Transaction.payment_id == payment.id,
                Transaction.kind == domain.CHARGE,
                Transaction.status == domain.PAID,
            )
        )
        if charge is None:
            raise LookupError(f"payment {payment.id} is Paid without a successful charge")
        result = await provider.refund(
            reference=charge.gateway_id,
            amount=payment.amount,
            idempotency_key=domain.refund_key(event.order_id),
        )
        if not result.succeeded:
            raise RefundRefusedError(f"refund of order {event.order_id} refused: {result.reason}")
        payment.status = domain.REFUNDED
        session.add(
            Transaction(
                payment_id=payment.id,
                gateway_id=result.reference,
                kind=domain.REFUND,
                amount=payment.amount,
                status=domain.REFUNDED,
            )
        )
        refunded = PaymentRefunded(
            payment_id=payment.id,
            order_id=payment.order_id,
            user_id=payment.user_id,
            amount=payment.amount,
            gateway_id=result.reference,
        )
        stage(session, Outbox, refunded, cause=envelope)


def _charge_facts(event: StockReserved) -> Select[tuple[bool, bool, UUID | None, str | None]]:
    """What a charge decides on, in one query (after the order's lock, so a cancellation
    applied concurrently is seen): a payment already made, a cancellation already seen, and the
    payment method's owner and token."""
    method = select(PaymentMethod.user_id, PaymentMethod.token).where(
        PaymentMethod.id == event.payment_method_id
    )
    return select(
        exists().where(Payment.order_id == event.order_id).label("has_payment"),
        exists().where(CancelledOrder.order_id == event.order_id).label("cancelled"),
        method.with_only_columns(PaymentMethod.user_id).scalar_subquery().label("method_owner"),
        method.with_only_columns(PaymentMethod.token).scalar_subquery().label("token"),
    )


def _failed(event: StockReserved, reason: str) -> PaymentFailed:
    return PaymentFailed(
        order_id=event.order_id, user_id=event.user_id, amount=event.total_price, reason=reason
    )


async def _lock_order(session: AsyncSession, order_id: UUID) -> None:
    """Serialise this order's messages until commit, across replicas: a reservation and a
    cancellation arrive on different topics and may be applied at the same moment."""
    await session.execute(
        select(func.pg_advisory_xact_lock(_ORDER_LOCKS, func.hashtext(str(order_id))))
    )


async def _payment_of(
    session: AsyncSession, order_id: UUID, *, lock: bool = False
) -> Payment | None:
    query = select(Payment).where(Payment.order_id == order_id)
    return await session.scalar(query.with_for_update() if lock else query)
