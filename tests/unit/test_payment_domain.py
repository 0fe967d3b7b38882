"""payment_svc's rules, the simulated provider's decisions and its faults, without a database."""

import asyncio
import re
from decimal import Decimal
from uuid import uuid4

import pytest

from payment_svc import domain, settling
from payment_svc.adapters import Faults, simulated_decline_reason, simulated_reference
from payment_svc.ports import ProviderError
from schemas.payments import REFUNDED_BEFORE_V2, PaymentRefunded


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("tok_visa", None),
        ("tok_mastercard", None),
        ("pm_123-abc", None),
        ("tok_decline", "card declined"),
        ("", "invalid card token"),
        ("tok visa", "invalid card token"),
        ("tok_visa\n", "invalid card token"),
        ("tok;drop", "invalid card token"),
    ],
)
def test_the_simulator_decides_on_the_token_alone(token: str, reason: str | None) -> None:
    assert simulated_decline_reason(token) == reason


def test_the_simulators_reference_follows_from_the_key() -> None:
    key = domain.charge_key(uuid4())
    assert simulated_reference(key) == simulated_reference(key)
    assert re.fullmatch(r"sim_[0-9a-f]{24}", simulated_reference(key))
    assert simulated_reference(key) != simulated_reference(domain.refund_key(uuid4()))


def test_provider_faults_are_read_from_their_spec() -> None:
    faults = Faults.parse("error_after_capture=0.2, slow_ms=50")
    assert faults == Faults(error_after_capture=0.2, slow_ms=50)
    assert Faults.parse(faults.spec()) == faults
    assert Faults.parse("off") == Faults.parse("") == Faults()


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("explode=1", "unknown provider fault 'explode'"),
        ("unavailable=lots", "needs a number"),
        ("unavailable=2", "must be within 0 and 1"),
        ("unavailable=nan", "must be within 0 and 1"),
        ("slow_ms=99999999", "must be within 0 and 30000"),
    ],
)
def test_provider_faults_refuse_a_spec_they_cannot_read(spec: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Faults.parse(spec)


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


@pytest.mark.parametrize(
    ("cancellation", "expected"),
    [
        ("Cancelled by the customer", "Cancelled by the customer"),
        ("out of stock: " + "Mug, " * 60, ("out of stock: " + "Mug, " * 60)[:255]),
        ("", REFUNDED_BEFORE_V2),
    ],
    ids=["as cancelled", "too long", "empty"],
)
def test_a_refund_tells_its_cancellations_reason_as_payment_refunded_takes_it(
    cancellation: str, expected: str
) -> None:
    reason = domain.refund_reason(cancellation)
    assert reason == expected
    refunded = PaymentRefunded(
        payment_id=uuid4(),
        order_id=uuid4(),
        user_id=uuid4(),
        amount=Decimal("1.00"),
        gateway_id="sim_r",
        reason=reason,
    )
    assert refunded.reason == expected


class Flaky:
    """A provider call that fails ``failures`` times (or hangs ``hang_s``), then answers."""

    def __init__(self, failures: int = 0, hang_s: float = 0.0) -> None:
        self.failures, self.hang_s, self.calls = failures, hang_s, 0

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.sleep(self.hang_s)
        if self.calls <= self.failures:
            raise ProviderError("unavailable")
        return "answer"


async def test_a_provider_call_is_made_again_by_its_key_until_it_answers() -> None:
    call = Flaky(failures=settling.PROVIDER_TRIES - 1)
    assert await settling.ask_provider(call, "charge of order o") == "answer"
    assert call.calls == settling.PROVIDER_TRIES


async def test_a_provider_call_that_keeps_failing_raises_provider_error_naming_it() -> None:
    call = Flaky(failures=settling.PROVIDER_TRIES)
    with pytest.raises(ProviderError, match="charge of order o: unavailable"):
        await settling.ask_provider(call, "charge of order o")
    assert call.calls == settling.PROVIDER_TRIES


async def test_a_provider_call_past_its_time_limit_counts_as_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settling, "PROVIDER_TIMEOUT_S", 0.01)
    call = Flaky(hang_s=1.0)
    with pytest.raises(ProviderError, match=r"no answer within 0\.01 s"):
        await settling.ask_provider(call, "void of order o")
    assert call.calls == settling.PROVIDER_TRIES
