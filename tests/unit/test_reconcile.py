"""Reconciliation's verdicts, order by order, on ledgers made up for each case."""

from decimal import Decimal

import pytest

from payment_svc.reconcile import OurPayment, TheirCharge, differences

TEN = Decimal("10.00")


def captured(refunded: Decimal = Decimal(0), refunds: int = 0) -> TheirCharge:
    return TheirCharge("captured", TEN, "sim_c", refunded=refunded, refunds=refunds)


def paid() -> OurPayment:
    return OurPayment("Paid", TEN, charges=[("sim_c", "Paid")])


def refunded() -> OurPayment:
    return OurPayment("Refunded", TEN, charges=[("sim_c", "Paid")], refunds=["sim_r"])


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        (captured(), paid()),
        (captured(TEN, 1), refunded()),
        (TheirCharge("declined", TEN, "sim_c"), OurPayment("Failed", TEN)),
        (TheirCharge("voided", Decimal(0), "sim_c"), OurPayment("Failed", TEN)),
        (TheirCharge("voided", Decimal(0), "sim_c"), None),
        (None, OurPayment("Failed", TEN)),
    ],
)
def test_nothing_differs_when_both_sides_tell_the_same(
    theirs: TheirCharge | None, ours: OurPayment | None
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
        (None, paid(), "the provider no charge"),
        (TheirCharge("declined", TEN, "sim_c"), paid(), "a declined charge"),
        (captured(TEN, 1), paid(), "refunded 10.00, payment_svc's payment is Paid"),
        (captured(), refunded(), "refunded 0, payment_svc's payment is Refunded"),
        (captured(TEN * 2, 2), refunded(), "refunded 2 times"),
        (captured(Decimal("4.00"), 1), refunded(), "refunded 4.00 of 10.00"),
        (captured(), OurPayment("Paid", Decimal("9.00"), [("sim_c", "Paid")]), "of 9.00"),
        (captured(), OurPayment("Paid", TEN, [("sim_x", "Paid")]), "records [('sim_x'"),
    ],
)
def test_each_disagreement_is_named_with_its_order(
    theirs: TheirCharge | None, ours: OurPayment | None, said: str
) -> None:
    [found] = differences(
        {"o": theirs} if theirs else {}, {"o": ours} if ours else {}, unsettled={}
    )
    assert found.startswith("order o: ")
    assert said in found


def test_a_charge_begun_and_never_settled_is_a_difference() -> None:
    [found] = differences({}, {}, unsettled={"o": "2026-12-03 17:00"})
    assert found == "order o: a charge begun at 2026-12-03 17:00 has no recorded outcome"
