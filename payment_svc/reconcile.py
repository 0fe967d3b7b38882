"""Reconciliation: the provider's records against payment_svc's payments, order by order.

Money is right when every charge the provider captured is a payment here (Paid, or Refunded
with the refund the provider made), and every payment here that took money has its capture
there. ``python -m stack reconcile`` prints each difference; the fault suite and the soak check
it after every settling.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg

from common.db import libpq_url
from payment_svc import domain
from payment_svc.ports import CAPTURED, ChargeRecord, PaymentProvider


@dataclass
class OurPayment:
    status: str
    amount: Decimal
    charges: list[str] = field(default_factory=list)
    """gateway_id of each successful Charge transaction."""
    refunds: list[str] = field(default_factory=list)
    """gateway_id of each Refund transaction."""


def differences(
    theirs: dict[str, ChargeRecord],
    ours: dict[str, OurPayment],
    unsettled: dict[str, str],
    cancelled: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """Each way the two sides disagree, one line per order (keyed by order id); and money kept
    for an order payment_svc knows is cancelled."""
    found = [
        f"order {order}: a charge begun at {since} has no recorded outcome"
        for order, since in sorted(unsettled.items())
    ]
    found += [
        f"order {order}: cancelled, and its payment is still Paid"
        for order in sorted(cancelled)
        if order in ours and ours[order].status == domain.PAID
    ]
    for order in sorted(theirs.keys() | ours.keys()):
        problem = _difference(theirs.get(order), ours.get(order))
        if problem:
            found.append(f"order {order}: {problem}")
    return found


def _difference(their: ChargeRecord | None, our: OurPayment | None) -> str | None:
    captured = their is not None and their.outcome == CAPTURED
    took_money = our is not None and our.status in (domain.PAID, domain.REFUNDED)
    if not captured:
        if took_money:
            assert our is not None
            outcome = "has no charge" if their is None else f"has a {their.outcome} charge"
            return f"payment_svc has a {our.status} payment of {our.amount}, the provider {outcome}"
        return None
    assert their is not None
    if our is None:
        return (
            f"the provider captured {their.amount} ({their.reference}), payment_svc has no payment"
        )
    if not took_money:
        return f"the provider captured {their.amount}, payment_svc's payment is {our.status}"
    if our.amount != their.amount:
        return f"the provider captured {their.amount}, payment_svc's payment is of {our.amount}"
    if our.charges != [their.reference]:
        return f"charge {their.reference} at the provider, payment_svc records {our.charges}"
    if their.refunds > 1:
        return f"the provider refunded {their.refunds} times"
    refunded = their.refunded == their.amount
    if their.refunded and not refunded:
        return f"the provider refunded {their.refunded} of {their.amount}"
    if refunded != (our.status == domain.REFUNDED) or len(our.refunds) != their.refunds:
        return (
            f"the provider refunded {their.refunded}, payment_svc's payment is {our.status}"
            f" with {len(our.refunds)} refund(s)"
        )
    return None


async def reconcile(service_url: str, provider: PaymentProvider) -> list[str]:
    """Read both sides and compare them (see :func:`differences`); ``provider`` is open."""
    theirs = {
        order: charge
        for charge in await provider.charges()
        if (order := _order_of(charge.idempotency_key)) is not None
    }
    ours, unsettled, cancelled = await _ours(service_url)
    return differences(theirs, ours, unsettled, cancelled)


async def _ours(
    service_url: str,
) -> tuple[dict[str, OurPayment], dict[str, str], set[str]]:
    payments: dict[str, OurPayment] = {}
    async with await psycopg.AsyncConnection.connect(libpq_url(service_url)) as conn:
        for order, status, amount, kind, gateway_id, t_status in await _all(
            conn,
            "SELECT p.order_id, p.status, p.amount, t.kind, t.gateway_id, t.status"
            " FROM payments p LEFT JOIN transactions t ON t.payment_id = p.id",
        ):
            payment = payments.setdefault(str(order), OurPayment(status, amount))
            if kind == domain.CHARGE and t_status == domain.PAID:
                payment.charges.append(gateway_id)
            elif kind == domain.REFUND:
                payment.refunds.append(gateway_id)
        unsettled = {
            str(order): str(since)
            for order, since in await _all(conn, "SELECT order_id, started_at FROM charge_attempts")
        }
        cancelled = {
            str(order) for (order,) in await _all(conn, "SELECT order_id FROM cancelled_orders")
        }
    return payments, unsettled, cancelled


async def _all(conn: "psycopg.AsyncConnection[Any]", sql: str) -> list[tuple[Any, ...]]:
    cursor = await conn.execute(sql)
    return await cursor.fetchall()


def _order_of(key: str) -> str | None:
    prefix = domain.CHARGE_KEY_PREFIX
    return key[len(prefix) :] if key.startswith(prefix) else None
