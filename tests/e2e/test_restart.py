"""A crashed service, restarted at once, takes its partitions back in seconds: its consumer is a
static member of its group, so the group does not wait for the dead process's session."""

import time

import pytest

from tests.e2e.conftest import Shop, launcher, new_product, payment_method
from tests.e2e.test_api_saga import outcome, place

READY_WITHIN_S = 10
PAID_WITHIN_S = 5


@pytest.mark.parametrize("service", ["payment_svc"])
def test_a_service_killed_and_restarted_is_ready_and_completes_an_order_in_seconds(
    shop: Shop, service: str
) -> None:
    admin = shop.admin()
    item = new_product(admin, price="3.00", stock=10)
    customer = shop.customer("Kim")
    method = payment_method(customer)
    assert outcome(customer, place(customer, [(item, 1)], method).json()["id"])["status"] == "Paid"

    killed = launcher(shop.env, "stop", service, "--kill")
    assert killed.returncode == 0, killed.stderr
    crashed = time.monotonic()
    started = launcher(shop.env, "start", service)  # returns once /readyz answers 200
    ready = time.monotonic()
    assert started.returncode == 0, started.stdout + started.stderr
    order = outcome(customer, place(customer, [(item, 1)], method).json()["id"])
    paid = time.monotonic()
    print(f"{service}: ready {ready - crashed:.1f}s after the crash, paid {paid - ready:.1f}s on")

    assert order["status"] == "Paid", order
    assert ready - crashed < READY_WITHIN_S, f"ready {ready - crashed:.1f}s after the crash"
    assert paid - ready < PAID_WITHIN_S, f"paid {paid - ready:.1f}s after ready"
