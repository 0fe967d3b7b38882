"""payment_svc's use cases; each is one transaction (inbox check, change, outbox rows)."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from functools import partial
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

from sqlalchemy import Numeric, Select, Text, Uuid, bindparam, cast, delete, exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from common.inbox import first_deliveries, first_delivery
from common.outbox import stage
from common.statements import Direct, InsertRows, UpdateRows, any_of, array_rows, table_of
from common.unit_of_work import SessionMaker
from payment_svc import domain
from payment_svc.models import (
    CancelledOrder,
    ChargeAttempt,
    Inbox,
    Outbox,
    Payment,
    PaymentMethod,
    Transaction,
)
from payment_svc.ports import ChargeResult, PaymentProvider, ProviderError, RefundResult
from schemas.envelope import Envelope, Message
from schemas.ids import new_id
from schemas.orders import OrderCancelled
from schemas.payments import (
    REFUNDED_BEFORE_V2,
    AddPaymentMethod,
    PaymentFailed,
    PaymentMethodAdded,
    PaymentRefunded,
    PaymentSucceeded,
)
from schemas.products import StockReserved

log = logging.getLogger(__name__)
T = TypeVar("T")

ORDER_LOCKS = 0x5E0B_0003
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
    autocommit: SessionMaker,
    provider: PaymentProvider,
    reserved: Sequence[tuple[Envelope, StockReserved]],
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
        records = _Records(session)
        to_charge: list[tuple[Envelope, StockReserved, str]] = []
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
            elif isinstance(plan, domain.Refuse):
                records.refused(_charge_of(event), _cause(envelope), plan.reason)
            else:
                assert order.token is not None  # the plan charges only the buyer's own method
                to_charge.append((envelope, event, order.token))
        if to_charge:
            async with autocommit() as committed_at_once:
                await _BEGIN_ATTEMPTS.execute(
                    committed_at_once, _attempt_columns([(e, event) for e, event, _ in to_charge])
                )
            # Asked all at once: each order is another key, and a provider's answer takes a
            # round trip (the simulator's, a commit to its ledger).
            answers = await asyncio.gather(
                *(
                    ask_provider(
                        partial(
                            provider.charge,
                            idempotency_key=domain.charge_key(event.order_id),
                            amount=event.total_price,
                            token=token,
                        ),
                        f"charge of order {event.order_id}",
                    )
                    for _, event, token in to_charge
                ),
                return_exceptions=True,
            )
            for (envelope, event, _), answer in zip(to_charge, answers, strict=True):
                if isinstance(answer, BaseException):
                    raise answer  # after every call has ended; the batch goes one at a time
                records.charged(_charge_of(event), _cause(envelope), answer)
        await records.write()


PROVIDER_TRIES = 3
"""A provider call that fails (or outlasts ``PROVIDER_TIMEOUT_S``) is made again at once, this
often in all, before its use case fails: the same key moves no money twice, and a passing error
then costs a retry, not the whole batch applied again one message at a time."""
PROVIDER_TIMEOUT_S = 10.0


async def ask_provider(call: Callable[[], Awaitable[T]], what: str) -> T:
    """``call()`` (a provider call by its key) within its time limit, made again when it fails;
    ProviderError once it failed ``PROVIDER_TRIES`` times."""
    for attempt in range(1, PROVIDER_TRIES + 1):
        try:
            async with asyncio.timeout(PROVIDER_TIMEOUT_S):
                return await call()
        except (ProviderError, TimeoutError) as exc:
            failure = str(exc) or f"no answer within {PROVIDER_TIMEOUT_S:g} s"
            if attempt == PROVIDER_TRIES:
                raise ProviderError(f"{what}: {failure}") from exc
            log.warning("asking the provider again (%s): %s", what, failure)
            await asyncio.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


async def refund_order(
    sessionmaker: SessionMaker,
    autocommit: SessionMaker,
    provider: PaymentProvider,
    cancelled: Sequence[tuple[Envelope, OrderCancelled]],
) -> None:
    """Refund each cancelled order's payment once, with the cancellation's reason; void a
    charge begun and not recorded (and refund it if it was captured).

    The cancellation is remembered first, with its reason, committed at once (``autocommit``),
    whatever happens next: a reservation arriving after it is not charged, and if the provider
    fails here until this message is dead-lettered, the sweep (:func:`settle_stale_charges`)
    still refunds, with the same reason."""
    async with sessionmaker.begin() as session:
        fresh = await first_deliveries(session, Inbox, cancelled)
        if not fresh:
            return
        order_ids = [event.order_id for _, event in fresh]
        reasons = [domain.refund_reason(event.reason) for _, event in fresh]
        async with autocommit() as committed_at_once:
            await _REMEMBER_CANCELLED.execute(
                committed_at_once,
                {
                    "order_id": order_ids,
                    "correlation_id": [envelope.correlation_id for envelope, _ in fresh],
                    "causation_id": [envelope.id for envelope, _ in fresh],
                    "reason": reasons,
                },
            )
        await _lock_orders(session, order_ids)
        payments = {
            payment.order_id: payment
            for payment in await _LOCK_PAYMENTS.rows(session, {"orders": order_ids})
            if domain.refundable(payment.status)
        }
        attempts = {
            attempt.order_id: attempt
            for attempt in await _LOCK_ATTEMPTS.rows(session, {"orders": order_ids})
        }
        if not payments and not attempts:
            return
        charges = {
            charge.payment_id: charge
            for charge in await _PAID_CHARGES.rows(
                session, {"payments": [payment.id for payment in payments.values()]}
            )
        }
        records = _Records(session)
        for (envelope, event), reason in zip(fresh, reasons, strict=True):
            attempt = attempts.get(event.order_id)
            if attempt is not None and not attempt.has_payment:
                await _settle(
                    records, provider, attempt, cancellation=reason, cause=_cause(envelope)
                )
                continue
            if attempt is not None:
                records.settled.append(event.order_id)
            payment = payments.get(event.order_id)
            if payment is None:
                continue
            charge = charges.get(payment.id)
            if charge is None:
                raise LookupError(f"payment {payment.id} is Paid without a successful charge")
            await _refund(
                records,
                provider,
                _Charge(payment.order_id, payment.user_id, payment.amount),
                payment.id,
                charge.gateway_id,
                _cause(envelope),
                reason=reason,
            )
        await records.write()


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
        due = await _DUE.scalars(session, {"age": older_than_s, "limit": _SETTLE_AT_MOST})
        if not due:
            return 0
        free = await _TRY_LOCK_ORDERS.scalars(session, {"id": sorted(due)})
        records = _Records(session)
        settled = 0
        for attempt in await _LOCK_ATTEMPTS.rows(session, {"orders": free}):
            if attempt.has_payment:  # recorded meanwhile, by a delivery
                records.settled.append(attempt.order_id)
                continue
            cause = _Cause(attempt.correlation_id, attempt.causation_id)
            try:
                await _settle(
                    records, provider, attempt, cancellation=attempt.cancellation, cause=cause
                )
            except (ProviderError, RefundRefusedError) as exc:
                log.warning("order %s's charge not settled yet: %s", attempt.order_id, exc)
                continue
            settled += 1
        for paid in await _PAID_BUT_CANCELLED.rows(session, {"orders": free}):
            cause = _Cause(paid.correlation_id, paid.causation_id)
            charge = _Charge(paid.order_id, paid.user_id, paid.amount)
            try:
                await _refund(
                    records, provider, charge, paid.id, paid.gateway_id, cause, reason=paid.reason
                )
            except (ProviderError, RefundRefusedError) as exc:
                log.warning("cancelled order %s not refunded yet: %s", paid.order_id, exc)
                continue
            settled += 1
        await records.write()
        return settled


_SETTLE_AT_MOST = 100
"""Attempts one sweep settles in one transaction (the rest wait for the next round)."""


class _Charge(NamedTuple):
    order_id: UUID
    user_id: UUID
    amount: Decimal


class _Cause(NamedTuple):
    correlation_id: UUID
    causation_id: UUID


def _cause(envelope: Envelope) -> _Cause:
    return _Cause(envelope.correlation_id, envelope.id)


def _charge_of(event: StockReserved) -> _Charge:
    return _Charge(event.order_id, event.user_id, event.total_price)


async def _settle(
    records: "_Records",
    provider: PaymentProvider,
    attempt: Any,
    *,
    cancellation: str | None,
    cause: _Cause,
) -> None:
    """Settle a charge begun and not recorded, from the provider: void it (no capture can
    follow), then record what it was; captured and the order cancelled (``cancellation``: why;
    None while it is not): refunded at once. Records nothing unless every provider call
    succeeded."""
    result = await ask_provider(
        partial(provider.void, attempt.idempotency_key), f"void of order {attempt.order_id}"
    )
    charge = _Charge(attempt.order_id, attempt.user_id, attempt.amount)
    cancelled = cancellation is not None
    refund = None
    if cancelled and result.approved:
        refund = await _refund_at_provider(provider, charge, result.reference)
    log.warning(
        "settling order %s's charge from the provider: %s%s",
        attempt.order_id,
        "captured" if result.approved else result.decline_reason,
        ", order cancelled: refunded" if refund else ", order cancelled" if cancelled else "",
    )
    if not cancelled or result.approved:
        payment_id = records.charged(charge, cause, result)
        if refund is not None and cancellation is not None:
            records.refunded(charge, payment_id, refund, cause, reason=cancellation)
    else:
        records.settled.append(attempt.order_id)  # nothing was taken, nothing to record


async def _refund(
    records: "_Records",
    provider: PaymentProvider,
    charge: _Charge,
    payment_id: UUID,
    reference: str,
    cause: _Cause,
    *,
    reason: str,
) -> None:
    result = await _refund_at_provider(provider, charge, reference)
    records.refunded(charge, payment_id, result, cause, reason=reason)


async def _refund_at_provider(
    provider: PaymentProvider, charge: _Charge, reference: str
) -> RefundResult:
    result = await ask_provider(
        partial(
            provider.refund,
            reference=reference,
            amount=charge.amount,
            idempotency_key=domain.refund_key(charge.order_id),
        ),
        f"refund of order {charge.order_id}",
    )
    if not result.succeeded:
        raise RefundRefusedError(f"refund of order {charge.order_id} refused: {result.reason}")
    return result


class _Records:
    """What a run records, written with a few statements at its end: payments, their
    transactions and events, and the charge attempts they settle."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.payments: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.transactions: list[dict[str, Any]] = []
        self.settled: list[UUID] = []

    def refused(self, charge: _Charge, cause: _Cause, reason: str) -> None:
        """A failed payment, without asking the provider."""
        self.payments.append(_payment(new_id(), charge, domain.FAILED))
        self._stage(_failed(charge, reason), cause)

    def charged(self, charge: _Charge, cause: _Cause, result: ChargeResult) -> UUID:
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
        self, charge: _Charge, payment_id: UUID, result: RefundResult, cause: _Cause, *, reason: str
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

    def _stage(self, message: Message, cause: _Cause) -> None:
        stage(
            self._session,
            Outbox,
            message,
            correlation_id=cause.correlation_id,
            causation_id=cause.causation_id,
        )

    async def write(self) -> None:
        # Statements, not ORM objects (a flush costs several times an insert); a payment's row
        # goes before its transactions', which refer to it.
        await _ADD_PAYMENTS.execute(self._session, self.payments)
        await _SET_PAYMENT_STATUS.execute(self._session, self.statuses)
        await _ADD_TRANSACTIONS.execute(self._session, self.transactions)
        if self.settled:
            await _SETTLE_ATTEMPTS.execute(self._session, {"orders": self.settled})


_PAYMENTS = table_of(Payment)
_TRANSACTIONS = table_of(Transaction)
_ATTEMPTS = table_of(ChargeAttempt)
_ADD_PAYMENTS = InsertRows(_PAYMENTS)
_ADD_TRANSACTIONS = InsertRows(_TRANSACTIONS)


def _payment(payment_id: UUID, charge: _Charge, status: str) -> dict[str, Any]:
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


def _attempt_columns(reserved: Sequence[tuple[Envelope, StockReserved]]) -> dict[str, list[Any]]:
    return {
        "order_id": [event.order_id for _, event in reserved],
        "user_id": [event.user_id for _, event in reserved],
        "amount": [event.total_price for _, event in reserved],
        "idempotency_key": [domain.charge_key(event.order_id) for _, event in reserved],
        "correlation_id": [envelope.correlation_id for envelope, _ in reserved],
        "causation_id": [envelope.id for envelope, _ in reserved],
    }


_ATTEMPT_COLUMNS = {
    "order_id": Uuid,
    "user_id": Uuid,
    "amount": Numeric(10, 2),
    "idempotency_key": Text,
    "correlation_id": Uuid,
    "causation_id": Uuid,
}
_BEGIN_ATTEMPTS = Direct(
    insert(_ATTEMPTS)
    .from_select(
        list(_ATTEMPT_COLUMNS),
        select(*array_rows(_ATTEMPT_COLUMNS).c),
    )
    .on_conflict_do_nothing()
)
"""Record charges about to be asked for; one begun before (a redelivery) keeps its row."""
_SETTLE_ATTEMPTS = Direct(delete(_ATTEMPTS).where(any_of(_ATTEMPTS.c.order_id, "orders")))
_CANCELLED = table_of(CancelledOrder)
_CANCELLATION_REASON = func.coalesce(_CANCELLED.c.reason, REFUNDED_BEFORE_V2)
"""Why a remembered order was cancelled; one remembered before reasons were is read as a
version 1 refund is."""


def _build_due() -> Select[tuple[UUID]]:
    since = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, bindparam("age"))
    stale_attempts = select(_ATTEMPTS.c.order_id).where(_ATTEMPTS.c.started_at < since)
    unrefunded = (
        select(_PAYMENTS.c.order_id)
        .join(_CANCELLED, _CANCELLED.c.order_id == _PAYMENTS.c.order_id)
        .where(_PAYMENTS.c.status == domain.PAID, _CANCELLED.c.at < since)
    )
    due = stale_attempts.union(unrefunded).subquery()
    return select(due.c.order_id).limit(bindparam("limit"))


_DUE = Direct(_build_due())
"""The orders the sweep settles: a charge begun longer than ``age`` seconds ago and not
recorded, or a Paid payment of an order cancelled longer ago than that."""


def _build_lock_attempts() -> Select[Any]:
    return (
        select(
            _ATTEMPTS.c.order_id,
            _ATTEMPTS.c.user_id,
            _ATTEMPTS.c.amount,
            _ATTEMPTS.c.idempotency_key,
            _ATTEMPTS.c.correlation_id,
            _ATTEMPTS.c.causation_id,
            exists().where(Payment.order_id == _ATTEMPTS.c.order_id).label("has_payment"),
            select(_CANCELLATION_REASON)
            .where(_CANCELLED.c.order_id == _ATTEMPTS.c.order_id)
            .scalar_subquery()
            .label("cancellation"),
        )
        .where(any_of(_ATTEMPTS.c.order_id, "orders"))
        .order_by(_ATTEMPTS.c.order_id)
        .with_for_update(of=_ATTEMPTS)
    )


_LOCK_ATTEMPTS = Direct(_build_lock_attempts())
"""The orders' charge attempts, locked, with whether a payment is recorded, and why the order
was cancelled (None: it is not)."""
_REMEMBER_CANCELLED = Direct(
    insert(_CANCELLED)
    .from_select(
        ["order_id", "correlation_id", "causation_id", "reason"],
        select(
            *array_rows(
                {"order_id": Uuid, "correlation_id": Uuid, "causation_id": Uuid, "reason": Text}
            ).c
        ),
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
_PAID_BUT_CANCELLED = Direct(
    select(
        _PAYMENTS.c.id,
        _PAYMENTS.c.order_id,
        _PAYMENTS.c.user_id,
        _PAYMENTS.c.amount,
        _TRANSACTIONS.c.gateway_id,
        _CANCELLED.c.correlation_id,
        _CANCELLED.c.causation_id,
        _CANCELLATION_REASON.label("reason"),
    )
    .join(_CANCELLED, _CANCELLED.c.order_id == _PAYMENTS.c.order_id)
    .join(
        _TRANSACTIONS,
        (_TRANSACTIONS.c.payment_id == _PAYMENTS.c.id)
        & (_TRANSACTIONS.c.kind == domain.CHARGE)
        & (_TRANSACTIONS.c.status == domain.PAID),
    )
    .where(any_of(_PAYMENTS.c.order_id, "orders"), _PAYMENTS.c.status == domain.PAID)
    .with_for_update(of=_PAYMENTS)
)
"""The orders' Paid payments, locked, where the order is cancelled: what a cancellation whose
refund failed left to refund."""


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


def _failed(charge: _Charge, reason: str) -> PaymentFailed:
    return PaymentFailed(
        order_id=charge.order_id, user_id=charge.user_id, amount=charge.amount, reason=reason
    )


async def _lock_orders(session: AsyncSession, order_ids: list[UUID]) -> None:
    """Serialise these orders' messages until commit, across replicas: a reservation and a
    cancellation arrive on different topics and may be applied at the same moment. The locks
    are taken in one order (no deadlock between two runs)."""
    await _LOCK_ORDERS.execute(session, {"id": sorted(order_ids)})


def _build_lock_orders() -> Select[tuple[Any]]:
    orders = array_rows({"id": Uuid})
    lock = func.pg_advisory_xact_lock(ORDER_LOCKS, func.hashtext(cast(orders.c.id, Text)))
    return select(lock).select_from(orders)


_LOCK_ORDERS = Direct(_build_lock_orders())


def _build_try_lock_orders() -> Select[tuple[UUID]]:
    orders = array_rows({"id": Uuid})
    lock = func.pg_try_advisory_xact_lock(ORDER_LOCKS, func.hashtext(cast(orders.c.id, Text)))
    return select(orders.c.id).select_from(orders).where(lock)


_TRY_LOCK_ORDERS = Direct(_build_try_lock_orders())
"""The orders whose lock is free, locked now; those another transaction holds are left out (the
sweep never waits on, or deadlocks with, a batch)."""
