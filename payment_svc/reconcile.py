"""Reconciliation: the provider's ledger against payment_svc's payments, order by order.

Money is right when every charge the provider captured is a payment here (Paid, or Refunded
with the refund the provider made), and every payment here that took money has its capture
there. ``python -m stack reconcile`` prints each difference; the fault suite and the soak run it
after every settling.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg

from common.db import libpq_url
from payment_svc import domain
from payment_svc.adapters import CAPTURED


@dataclass
class TheirCharge:
    """What the provider did under an order's charge key."""

    outcome: str
    amount: Decimal
    reference: str
    refunded: Decimal = Decimal(0)
    refunds: int = 0


@dataclass
class OurPayment:
    status: str
    amount: Decimal
    charges: list[tuple[str, str]] = field(default_factory=list)
    """(gateway_id, status) of each Charge transaction."""
    refunds: list[str] = field(default_factory=list)
    """gateway_id of each Refund transaction."""


def differences(
    theirs: dict[str, TheirCharge], ours: dict[str, OurPayment], unsettled: dict[str, str]
) -> list[str]:
    """Each way the two sides disagree, one line per order (keyed by order id)."""
    found = [
        f"order {order}: a charge begun at {since} has no recorded outcome"
        for order, since in sorted(unsettled.items())
    ]
    for order in sorted(theirs.keys() | ours.keys()):
        problem = _difference(theirs.get(order), ours.get(order))
        if problem:
            found.append(f"order {order}: {problem}")
    return found


def _difference(their: TheirCharge | None, our: OurPayment | None) -> str | None:
    captured = their is not None and their.outcome == CAPTURED
    took_money = our is not None and our.status in (domain.PAID, domain.REFUNDED)
    if not captured:
        if took_money:
            assert our is not None
            outcome = "no charge" if their is None else f"a {their.outcome} charge"
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
    if [reference for reference, _ in our.charges] != [their.reference]:
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


async def reconcile(service_url: str, ledger_url: str) -> list[str]:
    """Read both sides and compare them (see :func:`differences`)."""
    theirs = await _theirs(ledger_url)
    ours, unsettled = await _ours(service_url)
    return differences(theirs, ours, unsettled)


async def _theirs(ledger_url: str) -> dict[str, TheirCharge]:
    charges: dict[str, TheirCharge] = {}
    async with await psycopg.AsyncConnection.connect(libpq_url(ledger_url)) as conn:
        by_reference: dict[str, TheirCharge] = {}
        for key, outcome, amount, reference in await _all(
            conn, "SELECT key, outcome, amount, reference FROM charges"
        ):
            order = _order_of(key)
            if order is not None:
                charges[order] = by_reference[reference] = TheirCharge(outcome, amount, reference)
        for charge_reference, amount in await _all(
            conn, "SELECT charge_reference, amount FROM refunds"
        ):
            charge = by_reference.get(charge_reference)
            if charge is not None:
                charge.refunded += amount
                charge.refunds += 1
    return charges


async def _ours(service_url: str) -> tuple[dict[str, OurPayment], dict[str, str]]:
    payments: dict[str, OurPayment] = {}
    async with await psycopg.AsyncConnection.connect(libpq_url(service_url)) as conn:
        for order, status, amount, kind, gateway_id, t_status in await _all(
            conn,
            "SELECT p.order_id, p.status, p.amount, t.kind, t.gateway_id, t.status"
            " FROM payments p LEFT JOIN transactions t ON t.payment_id = p.id",
        ):
            payment = payments.setdefault(str(order), OurPayment(status, amount))
            if kind == domain.CHARGE and t_status == domain.PAID:
                payment.charges.append((gateway_id, t_status))
            elif kind == domain.REFUND:
                payment.refunds.append(gateway_id)
        unsettled = {
            str(order): str(since)
            for order, since in await _all(conn, "SELECT order_id, started_at FROM charge_attempts")
        }
    return payments, unsettled


async def _all(conn: "psycopg.AsyncConnection[Any]", sql: str) -> list[tuple[Any, ...]]:
    cursor = await conn.execute(sql)
    return await cursor.fetchall()


def _order_of(key: str) -> str | None:
    prefix = domain.CHARGE_KEY_PREFIX
    return key[len(prefix) :] if key.startswith(prefix) else None
