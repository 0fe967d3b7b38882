"""order_svc's pure rules: pricing a new order and the status state machine."""

from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from order_svc import domain
from schemas.orders import (
    CANCELLED,
    ORDER_STATUSES,
    PAID,
    PENDING,
    SHIPPED,
    OrderCancelled,
    OrderPaid,
    OrderShipped,
    PricedItem,
)
from schemas.products import ItemQuantity, Shortage

MUG, TEA = uuid4(), uuid4()


def line(product_id: UUID, quantity: int) -> ItemQuantity:
    return ItemQuantity(product_id=product_id, quantity=quantity)


def facts(status: str) -> domain.OrderFacts:
    return domain.OrderFacts(
        order_id=uuid4(),
        user_id=uuid4(),
        status=status,
        total_price=Decimal("12.50"),
        items=(line(MUG, 2),),
    )


def test_price_gives_lines_and_exact_total_when_every_product_is_known() -> None:
    outcome = domain.price(
        [line(MUG, 3), line(TEA, 1)], {MUG: Decimal("0.10"), TEA: Decimal("19.99")}
    )

    assert outcome == domain.Priced(
        items=(
            PricedItem(product_id=MUG, quantity=3, unit_price=Decimal("0.10")),
            PricedItem(product_id=TEA, quantity=1, unit_price=Decimal("19.99")),
        ),
        total=Decimal("20.29"),
    )
    assert isinstance(outcome.total, Decimal) and str(outcome.total) == "20.29"


def test_price_merges_lines_of_the_same_product_when_it_appears_twice() -> None:
    outcome = domain.price(
        [line(MUG, 1), line(TEA, 2), line(MUG, 4)], {MUG: Decimal(3), TEA: Decimal(1)}
    )

    assert isinstance(outcome, domain.Priced)
    assert [(item.product_id, item.quantity) for item in outcome.items] == [(MUG, 5), (TEA, 2)]
    assert outcome.total == Decimal(17)


def test_price_lists_every_unknown_product_when_some_are_not_in_the_copy() -> None:
    ghost, other_ghost = uuid4(), uuid4()

    outcome = domain.price(
        [line(ghost, 1), line(MUG, 1), line(other_ghost, 2), line(ghost, 1)], {MUG: Decimal(1)}
    )

    assert isinstance(outcome, domain.Rejected)
    assert outcome.unknown_products == (ghost, other_ghost)
    assert str(ghost) in outcome.reason and str(other_ghost) in outcome.reason
    assert outcome.reason.startswith("unknown products")


def test_price_rejects_when_total_does_not_fit_the_money_column() -> None:
    outcome = domain.price([line(MUG, 2)], {MUG: Decimal("50000000.00")})

    assert isinstance(outcome, domain.Rejected)
    assert "exceeds" in outcome.reason and outcome.unknown_products == ()


def test_price_rejects_when_merged_quantity_does_not_fit_the_quantity_column() -> None:
    outcome = domain.price([line(MUG, domain.MAX_QUANTITY), line(MUG, 1)], {MUG: Decimal("0.00")})

    assert isinstance(outcome, domain.Rejected)
    assert str(MUG) in outcome.reason


@pytest.mark.parametrize(
    ("current", "target"),
    [(PENDING, PAID), (PENDING, CANCELLED), (PAID, CANCELLED), (PAID, SHIPPED)],
)
def test_transition_is_allowed_when_it_is_in_the_state_machine(current: str, target: str) -> None:
    assert domain.allowed(current, target)
    assert domain.transition(facts(current), target, "why") is not None


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (current, target)
        for current in ORDER_STATUSES
        for target in ORDER_STATUSES
        if (current, target)
        not in {(PENDING, PAID), (PENDING, CANCELLED), (PAID, CANCELLED), (PAID, SHIPPED)}
    ],
)
def test_transition_is_refused_when_it_is_not_in_the_state_machine(
    current: str, target: str
) -> None:
    assert not domain.allowed(current, target)
    assert domain.transition(facts(current), target, "why") is None


def test_paying_emits_order_paid_with_the_total_when_pending() -> None:
    order = facts(PENDING)

    event = domain.transition(order, PAID)

    assert event == OrderPaid(
        order_id=order.order_id, user_id=order.user_id, total_price=Decimal("12.50")
    )


def test_cancelling_emits_order_cancelled_with_items_and_reason_when_paid() -> None:
    order = facts(PAID)

    event = domain.transition(order, CANCELLED, "changed my mind")

    assert isinstance(event, OrderCancelled)
    assert event.reason == "changed my mind"
    assert event.items == (line(MUG, 2),)
    assert (event.order_id, event.user_id) == (order.order_id, order.user_id)


def test_shipping_emits_order_shipped_when_paid() -> None:
    order = facts(PAID)

    assert domain.transition(order, SHIPPED) == OrderShipped(
        order_id=order.order_id, user_id=order.user_id
    )


def test_out_of_stock_reason_names_products_when_their_names_are_known() -> None:
    reason = domain.out_of_stock_reason(
        [
            Shortage(product_id=MUG, requested=3, available=1),
            Shortage(product_id=TEA, requested=2, available=0),
        ],
        {MUG: "Mug"},
    )

    assert reason == (
        f"out of stock: Mug (requested 3, available 1), {TEA} (requested 2, available 0)"
    )


def test_saga_outcome_is_refused_when_the_order_has_left_pending() -> None:
    assert domain.transition(facts(PAID), CANCELLED, "payment failed", only_from=PENDING) is None
    assert domain.transition(facts(PENDING), CANCELLED, "out of stock", only_from=PENDING)
