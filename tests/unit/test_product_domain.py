"""product_svc's stock rules: all or none, duplicates merged, never below zero nor above
STOCK_MAX."""

from uuid import UUID, uuid4

import pytest

from product_svc import domain
from schemas.products import STOCK_MAX, ItemQuantity, Shortage


def item(product_id: UUID, quantity: int) -> ItemQuantity:
    return ItemQuantity(product_id=product_id, quantity=quantity)


def test_reserve_takes_every_item_when_all_are_in_stock() -> None:
    a, b = uuid4(), uuid4()
    outcome = domain.reserve({a: 5, b: 1}, [item(a, 2), item(b, 1)])
    assert isinstance(outcome, domain.Reserved)
    assert dict(outcome.stock_after) == {a: 3, b: 0}
    assert set(outcome.items) == {item(a, 2), item(b, 1)}


def test_reserve_takes_nothing_when_one_item_is_short() -> None:
    a, b = uuid4(), uuid4()
    outcome = domain.reserve({a: 5, b: 1}, [item(a, 2), item(b, 3)])
    assert outcome == domain.OutOfStock((Shortage(product_id=b, requested=3, available=1),))


def test_reserve_reports_unknown_product_as_none_available_when_it_has_no_stock_row() -> None:
    unknown = uuid4()
    outcome = domain.reserve({}, [item(unknown, 1)])
    assert outcome == domain.OutOfStock((Shortage(product_id=unknown, requested=1, available=0),))


def test_reserve_adds_up_duplicate_lines_when_an_order_names_a_product_twice() -> None:
    a = uuid4()
    assert domain.reserve({a: 3}, [item(a, 2), item(a, 2)]) == domain.OutOfStock(
        (Shortage(product_id=a, requested=4, available=3),)
    )
    outcome = domain.reserve({a: 4}, [item(a, 2), item(a, 2)])
    assert isinstance(outcome, domain.Reserved)
    assert outcome.items == (item(a, 4),)
    assert outcome.stock_after == {a: 0}


def test_merge_orders_lines_by_product_id_when_given_in_any_order() -> None:
    ids = sorted(uuid4() for _ in range(5))
    merged = domain.merge_lines([item(product_id, 1) for product_id in reversed(ids)])
    assert [line.product_id for line in merged] == ids


def test_apply_change_refuses_when_stock_would_go_below_zero() -> None:
    assert domain.apply_change(3, -3) == 0
    assert domain.apply_change(3, 4) == 7
    with pytest.raises(domain.StockOutOfRangeError, match="below zero"):
        domain.apply_change(3, -4)


def test_apply_change_refuses_when_stock_would_pass_the_32_bit_column() -> None:
    assert STOCK_MAX == 2**31 - 1
    assert domain.apply_change(STOCK_MAX - 1_000_000, 1_000_000) == STOCK_MAX
    with pytest.raises(domain.StockOutOfRangeError, match="maximum"):
        domain.apply_change(STOCK_MAX - 999_999, 1_000_000)


def test_apply_change_leaves_room_for_the_stock_orders_hold_when_restocking() -> None:
    assert domain.apply_change(0, STOCK_MAX - 10, held=10) == STOCK_MAX - 10
    with pytest.raises(domain.StockOutOfRangeError, match="10 held"):
        domain.apply_change(0, STOCK_MAX - 9, held=10)
    assert domain.apply_change(STOCK_MAX - 10, -5, held=10) == STOCK_MAX - 15
