"""The simulated payment provider and its own ledger, on a real PostgreSQL: what payment_svc
relies on from any provider (payment_svc/ports.py), and its switchable faults."""

from collections.abc import AsyncIterator
from decimal import Decimal
from uuid import uuid4

import pytest
from sqlalchemy.engine import make_url

from payment_svc import domain
from payment_svc.adapters import Faults, SimulatedProvider, set_faults
from payment_svc.ports import ProviderError
from tests.conftest import Infra, eventually, unique

AMOUNT = Decimal("42.50")


@pytest.fixture
async def provider(infra: Infra) -> AsyncIterator[SimulatedProvider]:
    url = make_url(infra.database_url).set(database=unique("payment_provider"))
    simulator = SimulatedProvider(url.render_as_string(hide_password=False), seed=1)
    await simulator.open()
    try:
        yield simulator
    finally:
        await simulator.close()


def key() -> str:
    return domain.charge_key(uuid4())


async def test_a_key_asked_again_gets_its_first_answer_and_moves_no_money(
    provider: SimulatedProvider,
) -> None:
    charge_key = key()
    first = await provider.charge(idempotency_key=charge_key, amount=AMOUNT, token="tok_visa")
    again = await provider.charge(idempotency_key=charge_key, amount=AMOUNT, token="tok_decline")
    assert first.approved and again == first
    assert await provider.retrieve(charge_key) == first
    with pytest.raises(ProviderError, match=r"was used for 42\.50"):
        await provider.charge(idempotency_key=charge_key, amount=Decimal("1.00"), token="tok_visa")


async def test_a_declined_charge_is_on_record_with_its_reason(provider: SimulatedProvider) -> None:
    charge_key = key()
    declined = await provider.charge(idempotency_key=charge_key, amount=AMOUNT, token="tok_decline")
    assert (declined.approved, declined.decline_reason) == (False, "card declined")
    assert await provider.retrieve(charge_key) == declined
    assert await provider.retrieve(key()) is None


async def test_a_void_before_the_charge_means_no_capture_ever_under_that_key(
    provider: SimulatedProvider,
) -> None:
    charge_key = key()
    voided = await provider.void(charge_key)
    later = await provider.charge(idempotency_key=charge_key, amount=AMOUNT, token="tok_visa")
    assert not voided.approved and not later.approved
    assert later.decline_reason == "the charge was voided"


async def test_a_void_after_the_capture_answers_the_capture_for_the_caller_to_refund(
    provider: SimulatedProvider,
) -> None:
    charge_key = key()
    captured = await provider.charge(idempotency_key=charge_key, amount=AMOUNT, token="tok_visa")
    assert await provider.void(charge_key) == captured


async def test_a_refund_is_made_once_per_key_and_never_past_what_was_captured(
    provider: SimulatedProvider,
) -> None:
    charge = await provider.charge(idempotency_key=key(), amount=AMOUNT, token="tok_visa")
    first = await provider.refund(reference=charge.reference, amount=AMOUNT, idempotency_key="r1")
    again = await provider.refund(reference=charge.reference, amount=AMOUNT, idempotency_key="r1")
    more = await provider.refund(reference=charge.reference, amount=AMOUNT, idempotency_key="r2")
    unknown = await provider.refund(reference="sim_nothing", amount=AMOUNT, idempotency_key="r3")
    assert first.succeeded and again == first
    assert not more.succeeded and not unknown.succeeded


async def test_an_error_after_capture_leaves_the_capture_on_record(
    provider: SimulatedProvider,
) -> None:
    charge_key = key()
    provider.faults = Faults(error_after_capture=1.0)
    with pytest.raises(ProviderError, match="after capturing"):
        await provider.charge(idempotency_key=charge_key, amount=AMOUNT, token="tok_visa")
    provider.faults = Faults()
    found = await provider.retrieve(charge_key)
    assert found is not None and found.approved


async def test_an_unavailable_provider_does_nothing(provider: SimulatedProvider) -> None:
    charge_key = key()
    provider.faults = Faults(unavailable=1.0)
    with pytest.raises(ProviderError, match="unavailable"):
        await provider.charge(idempotency_key=charge_key, amount=AMOUNT, token="tok_visa")
    provider.faults = Faults()
    assert await provider.retrieve(charge_key) is None


async def test_faults_switched_in_the_ledger_reach_a_running_provider_within_a_second(
    provider: SimulatedProvider,
) -> None:
    await set_faults(provider._url, Faults(unavailable=1.0))

    async def answers() -> bool:
        try:
            await provider.retrieve(key())
        except ProviderError:
            return False
        return True

    async def unavailable() -> bool:
        return not await answers()

    await eventually(unavailable, timeout_s=3)
    await set_faults(provider._url, Faults.parse("off"))
    await eventually(answers, timeout_s=3)


async def test_faults_reset_in_the_ledger_give_a_running_provider_back_its_own(
    infra: Infra,
) -> None:
    url = make_url(infra.database_url).set(database=unique("payment_provider"))
    own = Faults(slow_ms=1)
    provider = SimulatedProvider(url.render_as_string(hide_password=False), own)
    await provider.open()
    try:
        await set_faults(provider._url, Faults.parse("off"))

        async def switched_to(faults: Faults) -> bool:
            await provider.retrieve(key())
            return provider.faults == faults

        await eventually(lambda: switched_to(Faults()), timeout_s=3)
        await set_faults(provider._url, None)
        await eventually(lambda: switched_to(own), timeout_s=3)
    finally:
        await provider.close()
