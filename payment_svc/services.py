"""payment_svc's use cases; each is one transaction (inbox check, change, outbox rows).

The set-based ones (:func:`charge_order`, :func:`refund_order`) take a ``run`` of messages of
one type, each about another order, and share one shape, with the same names:

1. ``fresh``: the run's first deliveries (:func:`common.inbox.first_deliveries`);
2. ``locked``: one read, under the orders' locks, of every row the run needs;
3. a loop over ``fresh`` where the domain decides each message's ``outcome`` and ``writes``
   (:class:`~payment_svc.writes.Writes`) collects its rows and stages its events;
4. ``await writes.execute()``: the run's bulk writes.

The provider is asked between 3 and 4 (:mod:`payment_svc.settling`): the money it moves does
not roll back with the transaction.
"""

import asyncio
import logging
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from common.inbox import first_deliveries, first_delivery
from common.outbox import stage
from common.unit_of_work import SessionMaker
from payment_svc import domain, statements
from payment_svc.models import Inbox, Outbox, PaymentMethod
from payment_svc.ports import ChargeResult, PaymentProvider, ProviderError
from payment_svc.settling import RefundRefusedError, ask_provider, refund, settle_attempt
from payment_svc.writes import Cause, Charge, Writes, cause_of, charge_of
from schemas.envelope import Envelope
from schemas.orders import OrderCancelled
from schemas.payments import AddPaymentMethod, PaymentMethodAdded
from schemas.products import StockReserved

log = logging.getLogger(__name__)


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
    autocommit: SessionMaker,
    provider: PaymentProvider,
    run: Sequence[tuple[Envelope, StockReserved]],
) -> None:
    """Charge orders whose stock is reserved: each once, and never after its cancellation.

    The provider is the pivot: the money it moves does not roll back with this transaction. So
    the charges are first recorded as attempts in a transaction of their own (``autocommit``
    sessions commit each statement), then asked for; the payment recorded here deletes its
    attempt. If this transaction is lost after the provider captured (a crash, a failed
    commit), the attempt stays, and whichever comes first settles it from the provider by its
    key: this delivery again (the key answers with the same charge), the order's cancellation
    (voids it and refunds what was captured) or the sweep (:func:`settle_stale_charges`).
    """
    async with sessionmaker.begin() as session:
        fresh = await first_deliveries(session, Inbox, run)
        if not fresh:
            return
        locked = await _lock_charges(session, fresh)
        writes = Writes(session)
        to_charge: list[tuple[Envelope, StockReserved, str]] = []
        for envelope, event in fresh:
            token = _plan_one(writes, locked[event.order_id], envelope, event)
            if token is not None:
                to_charge.append((envelope, event, token))
        if to_charge:
            await _begin_attempts(
                autocommit, [(envelope, event) for envelope, event, _ in to_charge]
            )
            # Asked all at once: each order is another key, and a provider's answer takes a
            # round trip (the simulator's, a commit to its ledger).
            answers = await asyncio.gather(
                *(_charge_one(provider, event, token) for _, event, token in to_charge),
                return_exceptions=True,
            )
            for (envelope, event, _), answer in zip(to_charge, answers, strict=True):
                if isinstance(answer, BaseException):
                    raise answer  # after every call has ended; the batch goes one at a time
                writes.charged(charge_of(event), cause_of(envelope), answer)
        await writes.execute()


async def _lock_charges(
    session: AsyncSession, fresh: Sequence[tuple[Envelope, StockReserved]]
) -> dict[UUID, Any]:
    """Each order's facts a charge decides on (:data:`statements.CHARGE_FACTS`), read under the
    orders' locks."""
    await _lock_orders(session, [event.order_id for _, event in fresh])
    found = await statements.CHARGE_FACTS.rows(
        session,
        {
            "order_id": [event.order_id for _, event in fresh],
            "method_id": [event.payment_method_id for _, event in fresh],
        },
    )
    return {row.order_id: row for row in found}


def _plan_one(writes: Writes, order: Any, envelope: Envelope, event: StockReserved) -> str | None:
    """The token of the card to charge for one order; None when it is not charged (skipped, or
    refused and recorded so)."""
    outcome = domain.plan_charge(
        has_payment=order.has_payment,
        cancelled=order.cancelled,
        buyer=event.user_id,
        method_owner=order.method_owner,
    )
    if isinstance(outcome, domain.Skip):
        log.info("not charging order %s: %s", event.order_id, outcome.why)
        return None
    if isinstance(outcome, domain.Refuse):
        writes.refused(charge_of(event), cause_of(envelope), outcome.reason)
        return None
    token: str | None = order.token
    assert token is not None  # the plan charges only the buyer's own method
    return token


async def _begin_attempts(
    autocommit: SessionMaker, charges: Sequence[tuple[Envelope, StockReserved]]
) -> None:
    """Record the charges about to be asked for, committed at once, whatever happens next."""
    async with autocommit() as committed_at_once:
        await statements.BEGIN_ATTEMPTS.execute(
            committed_at_once,
            {
                "order_id": [event.order_id for _, event in charges],
                "user_id": [event.user_id for _, event in charges],
                "amount": [event.total_price for _, event in charges],
                "idempotency_key": [domain.charge_key(event.order_id) for _, event in charges],
                "correlation_id": [envelope.correlation_id for envelope, _ in charges],
                "causation_id": [envelope.id for envelope, _ in charges],
            },
        )


async def _charge_one(provider: PaymentProvider, event: StockReserved, token: str) -> ChargeResult:
    return await ask_provider(
        partial(
            provider.charge,
            idempotency_key=domain.charge_key(event.order_id),
            amount=event.total_price,
            token=token,
        ),
        f"charge of order {event.order_id}",
    )


async def refund_order(
    sessionmaker: SessionMaker,
    autocommit: SessionMaker,
    provider: PaymentProvider,
    run: Sequence[tuple[Envelope, OrderCancelled]],
) -> None:
    """Refund each cancelled order's payment once, with the cancellation's reason; void a
    charge begun and not recorded (and refund it if it was captured).

    The cancellation is remembered first, with its reason, committed at once (``autocommit``),
    whatever happens next: a reservation arriving after it is not charged, and if the provider
    fails here until this message is dead-lettered, the sweep (:func:`settle_stale_charges`)
    still refunds, with the same reason."""
    async with sessionmaker.begin() as session:
        fresh = await first_deliveries(session, Inbox, run)
        if not fresh:
            return
        reasons = [domain.refund_reason(event.reason) for _, event in fresh]
        async with autocommit() as committed_at_once:
            await statements.REMEMBER_CANCELLED.execute(
                committed_at_once,
                {
                    "order_id": [event.order_id for _, event in fresh],
                    "correlation_id": [envelope.correlation_id for envelope, _ in fresh],
                    "causation_id": [envelope.id for envelope, _ in fresh],
                    "reason": reasons,
                },
            )
        locked = await _lock_refunds(session, [event.order_id for _, event in fresh])
        if locked is None:
            return
        writes = Writes(session)
        for (envelope, event), reason in zip(fresh, reasons, strict=True):
            await _refund_one(writes, provider, locked, event.order_id, cause_of(envelope), reason)
        await writes.execute()


class _Refunds(NamedTuple):
    """What a run of cancellations refunds or settles, by order: Paid payments, locked, with
    their charges (by payment), and charge attempts, locked."""

    payments: dict[UUID, Any]
    charges: dict[UUID, Any]
    attempts: dict[UUID, Any]


async def _lock_refunds(session: AsyncSession, order_ids: list[UUID]) -> _Refunds | None:
    """The orders' refundable payments and charge attempts, under the orders' locks; None when
    there is neither."""
    await _lock_orders(session, order_ids)
    payments = {
        payment.order_id: payment
        for payment in await statements.LOCK_PAYMENTS.rows(session, {"orders": order_ids})
        if domain.refundable(payment.status)
    }
    attempts = {
        attempt.order_id: attempt
        for attempt in await statements.LOCK_ATTEMPTS.rows(session, {"orders": order_ids})
    }
    if not payments and not attempts:
        return None
    charges = {
        charge.payment_id: charge
        for charge in await statements.PAID_CHARGES.rows(
            session, {"payments": [payment.id for payment in payments.values()]}
        )
    }
    return _Refunds(payments, charges, attempts)


async def _refund_one(
    writes: Writes,
    provider: PaymentProvider,
    locked: _Refunds,
    order_id: UUID,
    cause: Cause,
    reason: str,
) -> None:
    """Settle one cancelled order's charge begun and not recorded, or refund its payment."""
    attempt = locked.attempts.get(order_id)
    if attempt is not None and not attempt.has_payment:
        await settle_attempt(writes, provider, attempt, cancellation=reason, cause=cause)
        return
    if attempt is not None:
        writes.settled.append(order_id)
    payment = locked.payments.get(order_id)
    if payment is None:
        return
    charge = locked.charges.get(payment.id)
    if charge is None:
        raise LookupError(f"payment {payment.id} is Paid without a successful charge")
    paid = Charge(payment.order_id, payment.user_id, payment.amount)
    await refund(writes, provider, paid, payment.id, charge.gateway_id, cause, reason=reason)


async def settle_stale_charges(
    sessionmaker: SessionMaker, provider: PaymentProvider, *, older_than_s: float
) -> int:
    """Settle, from the provider, what no delivery has settled for ``older_than_s``:

    - a charge begun and not recorded (its StockReserved was dead-lettered, or is not coming
      back soon) is voided at the provider, then recorded as it answers: Paid if captured
      (and refunded at once if the order was cancelled meanwhile), else Failed, which cancels
      the order;
    - a Paid payment of a cancelled order (its OrderCancelled was dead-lettered after the
      provider failed to refund) is refunded.

    A refund tells the cancellation's reason that :func:`refund_order` remembered.

    Orders another transaction holds are left for the next round, and one the provider fails
    on does not hold back the others. Returns how many orders it settled."""
    async with sessionmaker.begin() as session:
        due = await statements.DUE.scalars(session, {"age": older_than_s, "limit": _SETTLE_AT_MOST})
        if not due:
            return 0
        free = await statements.TRY_LOCK_ORDERS.scalars(session, {"id": sorted(due)})
        writes = Writes(session)
        settled = 0
        for attempt in await statements.LOCK_ATTEMPTS.rows(session, {"orders": free}):
            if attempt.has_payment:  # recorded meanwhile, by a delivery
                writes.settled.append(attempt.order_id)
                continue
            cause = Cause(attempt.correlation_id, attempt.causation_id)
            try:
                await settle_attempt(
                    writes, provider, attempt, cancellation=attempt.cancellation, cause=cause
                )
            except (ProviderError, RefundRefusedError) as exc:
                log.warning("order %s's charge not settled yet: %s", attempt.order_id, exc)
                continue
            settled += 1
        for paid in await statements.PAID_BUT_CANCELLED.rows(session, {"orders": free}):
            cause = Cause(paid.correlation_id, paid.causation_id)
            charge = Charge(paid.order_id, paid.user_id, paid.amount)
            try:
                await refund(
                    writes, provider, charge, paid.id, paid.gateway_id, cause, reason=paid.reason
                )
            except (ProviderError, RefundRefusedError) as exc:
                log.warning("cancelled order %s not refunded yet: %s", paid.order_id, exc)
                continue
            settled += 1
        await writes.execute()
        return settled


_SETTLE_AT_MOST = 100
"""Attempts one sweep settles in one transaction (the rest wait for the next round)."""


async def _lock_orders(session: AsyncSession, order_ids: list[UUID]) -> None:
    """Serialise these orders' messages until commit, across replicas: a reservation and a
    cancellation arrive on different topics and may be applied at the same moment. The locks
    are taken in one order (no deadlock between two runs)."""
    await statements.LOCK_ORDERS.execute(session, {"id": sorted(order_ids)})
