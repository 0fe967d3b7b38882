"""payment_svc's rules and the simulated provider's answers, without a database."""

import re
from decimal import Decimal
from uuid import uuid4

import pytest

from payment_svc import domain
from payment_svc.adapters import FakeProvider, SimulatedProvider

AMOUNT = Decimal("42.50")


async def test_simulator_declines_with_card_declined_when_token_is_tok_decline() -> None:
    result = await SimulatedProvider().charge(
        idempotency_key="charge:1", amount=AMOUNT, token="tok_decline"
    )
    assert not result.approved
    assert result.decline_reason == "card declined"


@pytest.mark.parametrize("token", ["tok_visa", "tok_mastercard", "pm_123-abc"])
async def test_simulator_approves_when_token_is_well_formed(token: str) -> None:
    result = await SimulatedProvider().charge(
        idempotency_key="charge:1", amount=AMOUNT, token=token
    )
    assert result.approved
    assert result.decline_reason is None


@pytest.mark.parametrize("token", ["", "tok visa", "tok_visa\n", "tok;drop"])
async def test_simulator_declines_when_token_is_malformed(token: str) -> None:
    result = await SimulatedProvider().charge(
        idempotency_key="charge:1", amount=AMOUNT, token=token
    )
    assert not result.approved
    assert result.decline_reason == "invalid card token"


async def test_simulator_gives_the_same_reference_when_a_charge_is_retried_with_its_key() -> None:
    simulator = SimulatedProvider()
    key = domain.charge_key(uuid4())
    first = await simulator.charge(idempotency_key=key, amount=AMOUNT, token="tok_visa")
    again = await simulator.charge(idempotency_key=key, amount=AMOUNT, token="tok_visa")
    other = await simulator.charge(
        idempotency_key=domain.charge_key(uuid4()), amount=AMOUNT, token="tok_visa"
    )
    assert first == again
    assert re.fullmatch(r"sim_[0-9a-f]{24}", first.reference)
    assert other.reference != first.reference


async def test_simulator_refund_has_its_own_reference_when_charge_is_refunded() -> None:
    simulator = SimulatedProvider()
    order_id = uuid4()
    charge = await simulator.charge(
        idempotency_key=domain.charge_key(order_id), amount=AMOUNT, token="tok_visa"
    )
    refund = await simulator.refund(
        reference=charge.reference, amount=AMOUNT, idempotency_key=domain.refund_key(order_id)
    )
    assert refund.succeeded
    assert refund.reference.startswith("sim_")
    assert refund.reference != charge.reference


def test_keys_are_derived_from_the_order_when_computed_twice() -> None:
    order_id = uuid4()
    assert domain.charge_key(order_id) == domain.charge_key(order_id)
    assert domain.charge_key(order_id) != domain.refund_key(order_id)
    assert domain.charge_key(order_id) != domain.charge_key(uuid4())


def test_plan_charges_when_the_method_is_the_buyers_own() -> None:
    buyer = uuid4()
    plan = domain.plan_charge(has_payment=False, cancelled=False, buyer=buyer, method_owner=buyer)
    assert plan == domain.ChargeCard()


def test_plan_skips_when_the_order_already_has_a_payment() -> None:
    buyer = uuid4()
    plan = domain.plan_charge(has_payment=True, cancelled=False, buyer=buyer, method_owner=buyer)
    assert isinstance(plan, domain.Skip)


def test_plan_skips_when_the_order_was_cancelled_first() -> None:
    buyer = uuid4()
    plan = domain.plan_charge(has_payment=False, cancelled=True, buyer=buyer, method_owner=buyer)
    assert isinstance(plan, domain.Skip)


def test_plan_refuses_when_the_payment_method_is_unknown() -> None:
    plan = domain.plan_charge(has_payment=False, cancelled=False, buyer=uuid4(), method_owner=None)
    assert plan == domain.Refuse("unknown payment method")


def test_plan_refuses_when_the_payment_method_belongs_to_another_user() -> None:
    plan = domain.plan_charge(
        has_payment=False, cancelled=False, buyer=uuid4(), method_owner=uuid4()
    )
    assert plan == domain.Refuse("unknown payment method")


@pytest.mark.parametrize(
    ("status", "expected"),
    [("Paid", True), ("Failed", False), ("Refunded", False), (None, False)],
)
def test_refund_only_when_the_payment_is_paid(status: str | None, expected: bool) -> None:
    assert domain.refundable(status) is expected


async def test_fake_provider_records_calls_when_charging_and_refunding() -> None:
    fake = FakeProvider()
    declined = await fake.charge(idempotency_key="k1", amount=AMOUNT, token="tok_decline")
    approved = await fake.charge(idempotency_key="k2", amount=AMOUNT, token="tok_visa")
    await fake.refund(reference=approved.reference, amount=AMOUNT, idempotency_key="r2")
    assert not declined.approved and approved.approved
    assert [call.idempotency_key for call in fake.charges] == ["k1", "k2"]
    assert [call.reference for call in fake.refunds] == [approved.reference]
