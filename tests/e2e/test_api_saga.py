"""The order saga through the gateway, on the whole stack: every service its own process,
real Kafka, real PostgreSQL."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    Client,
    Shop,
    all_items,
    eventually,
    new_product,
    payment_method,
    told,
)

WAIT = {"wait": 25}


def place(
    customer: Client, items: list[tuple[str, int]], method: str, key: str | None = None
) -> httpx.Response:
    return customer.post(
        "/orders",
        json={
            "items": [{"product_id": p, "quantity": q} for p, q in items],
            "payment_method_id": method,
        },
        headers={"Idempotency-Key": key or uuid.uuid4().hex},
    )


def outcome(customer: Client, order_id: str) -> dict[str, Any]:
    response = customer.get(f"/orders/{order_id}", params=WAIT)
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()
    return order


def stock(client: Client, product_id: str) -> int:
    return int(client.get(f"/products/{product_id}").json()["stock"])


def ledger(admin: Client, product_id: str) -> list[dict[str, Any]]:
    return all_items(admin, f"/products/{product_id}/movements")


@pytest.fixture(scope="module")
def admin(shop: Shop) -> Client:
    return shop.admin()


def test_happy_path_pays_moves_stock_and_notifies(shop: Shop, admin: Client) -> None:
    widget = new_product(admin, price="19.99", stock=10)
    gadget = new_product(admin, price="5.00", stock=3)
    customer = shop.customer("Ann")
    method = payment_method(customer)

    placed = place(customer, [(widget, 2), (gadget, 1)], method)
    assert placed.status_code == 202
    assert placed.headers["Location"] == f"/orders/{placed.json()['id']}"
    started = time.monotonic()
    order = outcome(customer, placed.json()["id"])
    assert time.monotonic() - started < WAIT["wait"] - 5, "the long poll waited out its time"

    assert order["status"] == "Paid", order
    assert Decimal(order["total_price"]) == Decimal("44.98")
    assert order["payment"] == {"status": "Paid", "amount": "44.98"}
    assert [step["status"] for step in order["history"]] == ["Pending", "Paid"]
    assert {(i["product_id"], i["quantity"], i["unit_price"]) for i in order["items"]} == {
        (widget, 2, "19.99"),
        (gadget, 1, "5.00"),
    }
    assert stock(customer, widget) == 8 and stock(customer, gadget) == 2
    eventually(lambda: sorted(m["change"] for m in ledger(admin, widget)) == [-2, 10])

    payment = httpx.get(shop.service_url(8004) + f"/orders/{order['id']}/payment").json()
    assert [(t["kind"], t["status"]) for t in payment["transactions"]] == [("Charge", "Paid")]
    assert payment["transactions"][0]["gateway_id"]

    def sent_kinds() -> set[str] | None:
        items = customer.get("/me/notifications").json()["items"]
        kinds = {n["type"] for n in items if n["status"] == "Sent"}
        return kinds if {"OrderPlaced", "PaymentSucceeded"} <= kinds else None

    assert "Registration" in eventually(sent_kinds)


def test_out_of_stock_cancels_with_reason_and_leaves_stock(shop: Shop, admin: Client) -> None:
    scarce = new_product(admin, price="3.50", stock=1)
    customer = shop.customer("Ben")
    order = outcome(customer, place(customer, [(scarce, 2)], payment_method(customer)).json()["id"])
    assert order["status"] == "Cancelled"
    assert "stock" in order["reason"].lower()
    assert order["payment"] is None
    assert stock(customer, scarce) == 1


def test_declined_payment_cancels_and_releases_stock(shop: Shop, admin: Client) -> None:
    item = new_product(admin, price="12.00", stock=4)
    customer = shop.customer("Cat")
    declined = payment_method(customer, "tok_decline")
    order = outcome(customer, place(customer, [(item, 3)], declined).json()["id"])
    assert order["status"] == "Cancelled"
    assert "declined" in order["reason"].lower()
    assert order["payment"]["status"] == "Failed"
    eventually(lambda: stock(customer, item) == 4)
    eventually(lambda: sorted(m["change"] for m in ledger(admin, item)) == [-3, 3, 4])


def test_cancelling_a_paid_order_refunds_telling_why_and_restocks(
    shop: Shop, admin: Client
) -> None:
    item = new_product(admin, price="7.25", stock=5)
    customer = shop.customer("Dan")
    order_id = place(customer, [(item, 2)], payment_method(customer)).json()["id"]
    assert outcome(customer, order_id)["status"] == "Paid"

    assert customer.post(f"/orders/{order_id}/cancel").status_code == 202
    eventually(lambda: customer.get(f"/orders/{order_id}").json()["status"] == "Cancelled")
    eventually(
        lambda: customer.get(f"/orders/{order_id}").json()["payment"]["status"] == "Refunded"
    )
    eventually(lambda: stock(customer, item) == 5)
    assert eventually(lambda: told(customer, "PaymentRefunded")) == [
        f"Your payment of 14.50 for order {order_id} was refunded: Cancelled by the customer."
    ]
    assert customer.post(f"/orders/{order_id}/cancel").status_code == 409


def test_admin_ships_a_paid_order_and_nobody_else_can(shop: Shop, admin: Client) -> None:
    item = new_product(admin, price="1.00", stock=5)
    customer = shop.customer("Eli")
    order_id = place(customer, [(item, 1)], payment_method(customer)).json()["id"]
    assert outcome(customer, order_id)["status"] == "Paid"
    assert customer.post(f"/orders/{order_id}/ship").status_code == 403
    assert admin.post(f"/orders/{order_id}/ship").status_code == 202
    eventually(lambda: customer.get(f"/orders/{order_id}").json()["status"] == "Shipped")
    assert admin.post(f"/orders/{order_id}/ship").status_code == 409
    assert customer.post(f"/orders/{order_id}/cancel").status_code == 409


def test_retried_post_with_the_same_idempotency_key_is_one_order(shop: Shop, admin: Client) -> None:
    item = new_product(admin, price="2.00", stock=10)
    customer = shop.customer("Fay")
    method = payment_method(customer)
    first = place(customer, [(item, 3)], method, key="checkout-42")
    second = place(customer, [(item, 3)], method, key="checkout-42")
    order_id = first.json()["id"]
    assert first.status_code == second.status_code == 202
    assert first.json() == {"id": order_id, "status": "Pending"}
    assert second.json()["id"] == order_id and second.json()["status"] in ("Pending", "Paid")
    assert outcome(customer, order_id)["status"] == "Paid"
    # Answered with the order as it is now, and its command sent again changes nothing.
    third = place(customer, [(item, 3)], method, key="checkout-42")
    assert (third.status_code, third.json()) == (202, {"id": order_id, "status": "Paid"})
    # A retry that the checks would refuse now still finds the order it placed.
    fourth = place(customer, [(str(uuid.uuid4()), 1)], method, key="checkout-42")
    assert (fourth.status_code, fourth.json()) == (202, {"id": order_id, "status": "Paid"})
    assert place(customer, [(str(uuid.uuid4()), 1)], method, key="checkout-43").status_code == 422
    # The cancellation is keyed by the order like the retries' commands: applied after them.
    assert customer.post(f"/orders/{order_id}/cancel").status_code == 202
    eventually(lambda: customer.get(f"/orders/{order_id}").json()["status"] == "Cancelled")
    order = customer.get(f"/orders/{order_id}").json()
    assert [step["status"] for step in order["history"]] == ["Pending", "Paid", "Cancelled"]
    eventually(lambda: stock(customer, item) == 10)
    assert len(all_items(customer, "/orders")) == 1


def test_an_order_for_a_product_that_does_not_exist_is_422_naming_the_item(
    shop: Shop, admin: Client
) -> None:
    real = new_product(admin, price="4.00", stock=5)
    customer = shop.customer("Ivy")
    refused = place(customer, [(real, 1), (str(uuid.uuid4()), 1)], payment_method(customer))
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "items", 1, "product_id"]
    assert stock(customer, real) == 5


def test_another_customers_order_is_invisible(shop: Shop, admin: Client) -> None:
    item = new_product(admin, price="1.50", stock=3)
    owner = shop.customer("Gus")
    other = shop.customer("Hue")
    order_id = place(owner, [(item, 1)], payment_method(owner)).json()["id"]
    outcome(owner, order_id)
    assert other.get(f"/orders/{order_id}").status_code == 404
    assert other.post(f"/orders/{order_id}/cancel").status_code == 404
    assert other.get("/orders").json()["items"] == []
    assert other.get("/orders", params={"user_id": owner.id}).status_code == 403
    assert admin.get(f"/orders/{order_id}").status_code == 200
    foreign_method = payment_method(owner)
    stolen = place(other, [(item, 1)], foreign_method)
    assert stolen.status_code == 422
    assert stolen.json()["detail"][0]["loc"] == ["body", "payment_method_id"]


def test_buyers_racing_for_the_last_units_never_oversell(shop: Shop, admin: Client) -> None:
    units = 3
    item = new_product(admin, price="9.99", stock=units)
    buyers = [shop.customer(f"Racer{n}") for n in range(10)]
    methods = [payment_method(buyer) for buyer in buyers]

    def buy(index: int) -> str:
        placed = place(buyers[index], [(item, 1)], methods[index])
        return str(outcome(buyers[index], placed.json()["id"])["status"])

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(buy, range(10)))
    assert statuses.count("Paid") == units
    assert statuses.count("Cancelled") == 10 - units
    assert stock(admin, item) == 0
    # The ledger is inventory_svc's read model, kept from events: it catches up.
    eventually(lambda: sum(m["change"] for m in ledger(admin, item)) == 0)


def test_at_rest_every_products_stock_equals_its_ledger(shop: Shop, admin: Client) -> None:
    assert all_items(admin, "/products")

    def off_ledger() -> list[str]:
        """Products whose stock differs from their ledger (inventory_svc catches up on events)."""
        return [
            product["id"]
            for product in all_items(admin, "/products")
            if sum(m["change"] for m in ledger(admin, product["id"])) != product["stock"]
        ]

    eventually(lambda: off_ledger() == [])
    audit = httpx.get(shop.service_url(8006) + "/audit").json()
    assert audit["mismatches"] == []
