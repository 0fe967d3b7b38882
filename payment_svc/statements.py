"""payment_svc's compiled statements: the locks, reads and bulk writes of its set-based use cases
and of the sweep, each built once as a module constant (a statement is compiled once, and
deferred rows are grouped by the statement's identity)."""

from typing import Any
from uuid import UUID

from sqlalchemy import Numeric, Select, Text, Uuid, bindparam, cast, delete, exists, func, select
from sqlalchemy.dialects.postgresql import insert

from common.statements import Direct, InsertRows, UpdateRows, any_of, array_rows, table_of
from payment_svc import domain
from payment_svc.models import CancelledOrder, ChargeAttempt, Payment, PaymentMethod, Transaction
from schemas.payments import REFUNDED_BEFORE_V2

ORDER_LOCKS = 0x5E0B_0003
"""First key of the two-key advisory locks that serialise the messages of one order."""

_PAYMENTS = table_of(Payment)
_TRANSACTIONS = table_of(Transaction)
_ATTEMPTS = table_of(ChargeAttempt)
_CANCELLED = table_of(CancelledOrder)
_CANCELLATION_REASON = func.coalesce(_CANCELLED.c.reason, REFUNDED_BEFORE_V2)
"""Why a remembered order was cancelled; one remembered before reasons were is read as a
version 1 refund is."""


def _build_lock_orders() -> Select[tuple[Any]]:
    orders = array_rows({"id": Uuid})
    lock = func.pg_advisory_xact_lock(ORDER_LOCKS, func.hashtext(cast(orders.c.id, Text)))
    return select(lock).select_from(orders)


LOCK_ORDERS = Direct(_build_lock_orders())


def _build_try_lock_orders() -> Select[tuple[UUID]]:
    orders = array_rows({"id": Uuid})
    lock = func.pg_try_advisory_xact_lock(ORDER_LOCKS, func.hashtext(cast(orders.c.id, Text)))
    return select(orders.c.id).select_from(orders).where(lock)


TRY_LOCK_ORDERS = Direct(_build_try_lock_orders())
"""The orders whose lock is free, locked now; those another transaction holds are left out (the
sweep never waits on, or deadlocks with, a batch)."""


def _build_charge_facts() -> Select[tuple[UUID, bool, bool, UUID | None, str | None]]:
    orders = array_rows({"order_id": Uuid, "method_id": Uuid})
    return select(
        orders.c.order_id,
        exists().where(Payment.order_id == orders.c.order_id).label("has_payment"),
        exists().where(CancelledOrder.order_id == orders.c.order_id).label("cancelled"),
        PaymentMethod.user_id.label("method_owner"),
        PaymentMethod.token,
    ).select_from(orders.outerjoin(PaymentMethod, PaymentMethod.id == orders.c.method_id))


CHARGE_FACTS = Direct(_build_charge_facts())
"""What each charge of a run decides on, in one query (after the orders' locks, so that a
cancellation applied concurrently is seen): a payment already made, a cancellation already
seen, and the payment method's owner and token. Bound with lists of ``order_id`` and
``method_id``."""

_ATTEMPT_COLUMNS = {
    "order_id": Uuid,
    "user_id": Uuid,
    "amount": Numeric(10, 2),
    "idempotency_key": Text,
    "correlation_id": Uuid,
    "causation_id": Uuid,
}
BEGIN_ATTEMPTS = Direct(
    insert(_ATTEMPTS)
    .from_select(
        list(_ATTEMPT_COLUMNS),
        select(*array_rows(_ATTEMPT_COLUMNS).c),
    )
    .on_conflict_do_nothing()
)
"""Record charges about to be asked for; one begun before (a redelivery) keeps its row."""
SETTLE_ATTEMPTS = Direct(delete(_ATTEMPTS).where(any_of(_ATTEMPTS.c.order_id, "orders")))
REMEMBER_CANCELLED = Direct(
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


LOCK_ATTEMPTS = Direct(_build_lock_attempts())
"""The orders' charge attempts, locked, with whether a payment is recorded, and why the order
was cancelled (None: it is not)."""
LOCK_PAYMENTS = Direct(
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
PAID_CHARGES = Direct(
    select(_TRANSACTIONS.c.payment_id, _TRANSACTIONS.c.gateway_id).where(
        any_of(_TRANSACTIONS.c.payment_id, "payments"),
        _TRANSACTIONS.c.kind == domain.CHARGE,
        _TRANSACTIONS.c.status == domain.PAID,
    )
)


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


DUE = Direct(_build_due())
"""The orders the sweep settles: a charge begun longer than ``age`` seconds ago and not
recorded, or a Paid payment of an order cancelled longer ago than that."""
PAID_BUT_CANCELLED = Direct(
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

ADD_PAYMENTS = InsertRows(_PAYMENTS)
ADD_TRANSACTIONS = InsertRows(_TRANSACTIONS)
SET_PAYMENT_STATUS = UpdateRows(_PAYMENTS, match="id")
