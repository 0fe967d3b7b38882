"""A client's own writes are usable in its next request, and an order's saga can be followed
as a stream of Server-Sent Events."""

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.e2e.conftest import Client, Shop


def test_category_product_image_card_order_each_usable_in_the_next_request(shop: Shop) -> None:
    admin, customer = shop.admin(), shop.customer("Rita")

    category = admin.post("/categories", json={"name": f"cat-{uuid.uuid4().hex[:6]}"})
    assert category.status_code == 201, category.text
    category_id = category.json()["id"]
    assert category.headers["Location"] == f"/categories/{category_id}"
    assert admin.get(f"/categories/{category_id}").status_code == 200

    product = admin.post(
        "/products",
        json={"name": "Kettle", "price": "24.90", "category_id": category_id, "stock": 3},
    )
    assert product.status_code == 201, product.text
    product_id = product.json()["id"]
    assert product.json()["stock"] == 3 and product.json()["category_id"] == category_id
    assert customer.get(f"/products/{product_id}").json()["stock"] == 3

    image = admin.post(f"/products/{product_id}/images", json={"url": "https://img.test/k.png"})
    assert image.status_code == 201, image.text
    images = customer.get(f"/products/{product_id}").json()["images"]
    assert [i["id"] for i in images] == [image.json()["id"]]

    restocked = admin.post(f"/products/{product_id}/stock", json={"change": 2})
    assert (restocked.status_code, restocked.json()["stock"]) == (200, 5), restocked.text
    renamed = admin.patch(f"/products/{product_id}", json={"name": "Kettle 2"})
    assert (renamed.status_code, renamed.json()["name"]) == (200, "Kettle 2"), renamed.text
    assert customer.get(f"/products/{product_id}").json()["name"] == "Kettle 2"

    address = customer.post(
        "/me/addresses", json={"street": "1 Main St", "city": "A", "state": "B", "zip_code": "1"}
    )
    assert address.status_code == 201, address.text
    card = customer.post("/me/payment-methods", json={"method": "card", "token": "tok_visa"})
    assert card.status_code == 201, card.text
    assert "token" not in card.json()
    listed = customer.get("/me/payment-methods").json()["items"]
    assert card.json()["id"] in {m["id"] for m in listed}

    placed = customer.post(
        "/orders",
        json={
            "items": [{"product_id": product_id, "quantity": 2}],
            "payment_method_id": card.json()["id"],
            "address_id": address.json()["id"],
        },
    )
    assert placed.status_code == 202, placed.text
    order = customer.get(placed.headers["Location"])  # recorded by the time of the 202
    assert order.status_code == 200, order.text
    paid = customer.get(placed.headers["Location"], params={"wait": 10}).json()
    assert paid["status"] == "Paid", paid


def test_a_write_its_service_refuses_is_a_4xx_naming_why_and_changes_nothing(shop: Shop) -> None:
    admin = shop.admin()
    no_category = admin.post(
        "/products", json={"name": "Orphan", "price": "1.00", "category_id": str(uuid.uuid4())}
    )
    assert no_category.status_code == 422, no_category.text
    assert no_category.json()["detail"][0]["loc"] == ["body", "category_id"]
    assert admin.post(f"/products/{uuid.uuid4()}/stock", json={"change": 1}).status_code == 404
    category = admin.post("/categories", json={"name": "Refusals"}).json()["id"]
    product = admin.post(
        "/products", json={"name": "Few", "price": "1.00", "category_id": category, "stock": 3}
    ).json()["id"]
    # Concurrent removals that each fit what a read showed: product_svc, which applies them one
    # by one under its row lock, refuses the one that would go below zero, and says so.
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda _: admin.post(f"/products/{product}/stock", json={"change": -1}), range(4)
            )
        )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 409], [a.text for a in answers]
    assert admin.get(f"/products/{product}").json()["stock"] == 0


def _events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-Sent Events as dicts of their fields (comments and pings skipped)."""
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


def _stream(
    client: Client, order_id: str, last_event_id: str | None = None
) -> Iterator[dict[str, str]]:
    headers = {**client.headers, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    with httpx.stream(
        "GET", f"{client.shop.url}/orders/{order_id}/events", headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield from _events(response.iter_lines())


def test_an_orders_events_stream_shows_its_steps_and_resumes_after_a_reconnect(
    shop: Shop,
) -> None:
    admin, customer = shop.admin(), shop.customer("Sam")
    category = admin.post("/categories", json={"name": "Streams"}).json()["id"]
    product = admin.post(
        "/products", json={"name": "Lamp", "price": "5.00", "category_id": category, "stock": 5}
    ).json()["id"]
    card = customer.post("/me/payment-methods", json={"method": "card", "token": "tok_visa"})
    placed = customer.post(
        "/orders",
        json={
            "items": [{"product_id": product, "quantity": 1}],
            "payment_method_id": card.json()["id"],
        },
    ).json()["id"]

    seen = []
    for event in _stream(customer, placed):
        seen.append(event)
        if '"Paid"' in event["data"]:
            break  # the client goes away while the order could still change
    assert [e["event"] for e in seen] == ["status"] * len(seen)
    assert ['"Pending"' in seen[0]["data"], '"Paid"' in seen[-1]["data"]] == [True, True]
    assert [e["id"] for e in seen] == [str(n) for n in range(1, len(seen) + 1)]

    assert admin.post(f"/orders/{placed}/ship").status_code == 202
    resumed = list(_stream(customer, placed, last_event_id=seen[-1]["id"]))  # ends: Shipped
    assert [e["id"] for e in resumed] == [str(len(seen) + 1)], resumed
    assert '"Shipped"' in resumed[0]["data"]
    assert customer.get(f"/orders/{uuid.uuid4()}/events").status_code == 404
