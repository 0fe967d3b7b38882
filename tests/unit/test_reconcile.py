"""Reconciliation's verdicts, order by order, on ledgers made up for each case."""

from decimal import Decimal

import pytest

from payment_svc.ports import ChargeRecord
from payment_svc.reconcile import OurPayment, differences

TEN = Decimal("10.00")


def their(outcome: str, amount: Decimal = TEN) -> ChargeRecord:
    return ChargeRecord("charge:o", outcome, amount, "sim_c")


def captured(refunded: Decimal = Decimal(0), refunds: int = 0) -> ChargeRecord:
    return ChargeRecord("charge:o", "captured", TEN, "sim_c", refunded=refunded, refunds=refunds)


def paid() -> OurPayment:
    return OurPayment("Paid", TEN, charges=["sim_c"])


def refunded() -> OurPayment:
    return OurPayment("Refunded", TEN, charges=["sim_c"], refunds=["sim_r"])


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        (captured(), paid()),
        (captured(TEN, 1), refunded()),
        (their("declined"), OurPayment("Failed", TEN)),
        (their("voided", Decimal(0)), OurPayment("Failed", TEN)),
        (their("voided", Decimal(0)), None),
        (None, OurPayment("Failed", TEN)),
    ],
)
def test_nothing_differs_when_both_sides_tell_the_same(
    theirs: ChargeRecord | None, ours: OurPayment | None
) -> None:
    assert (
        differences({"o": theirs} if theirs else {}, {"o": ours} if ours else {}, unsettled={})
        == []
    )


@pytest.mark.parametrize(
    ("theirs", "ours", "said"),
    [
        (captured(), None, "payment_svc has no payment"),
        (captured(), OurPayment("Failed", TEN), "payment is Failed"),
        (None, paid(), "the provider has no charge"),
        (their("declined"), paid(), "has a declined charge"),
        (captured(TEN, 1), paid(), "refunded 10.00, payment_svc's payment is Paid"),
        (captured(), refunded(), "refunded 0, payment_svc's payment is Refunded"),
        (captured(TEN * 2, 2), refunded(), "refunded 2 times"),
        (captured(Decimal("4.00"), 1), refunded(), "refunded 4.00 of 10.00"),
        (captured(), OurPayment("Paid", Decimal("9.00"), ["sim_c"]), "of 9.00"),
        (captured(), OurPayment("Paid", TEN, ["sim_x"]), "records ['sim_x']"),
    ],
)
def test_each_disagreement_is_named_with_its_order(
    theirs: ChargeRecord | None, ours: OurPayment | None, said: str
) -> None:
    [found] = differences(
        {"o": theirs} if theirs else {}, {"o": ours} if ours else {}, unsettled={}
    )
    assert found.startswith("order o: ")
    assert said in found


def test_a_charge_begun_and_never_settled_is_a_difference() -> None:
    [found] = differences({}, {}, unsettled={"o": "2026-12-03 17:00"})
    assert found == "order o: a charge begun at 2026-12-03 17:00 has no recorded outcome"


def test_a_cancelled_order_whose_payment_is_still_paid_is_a_difference() -> None:
    found = differences({"o": captured()}, {"o": paid()}, unsettled={}, cancelled={"o"})
    assert found == ["order o: cancelled, and its payment is still Paid"]
    assert differences({"o": captured(TEN, 1)}, {"o": refunded()}, {}, cancelled={"o"}) == []
