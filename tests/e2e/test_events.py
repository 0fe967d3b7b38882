"""The shop's events as another team meets them: the AsyncAPI document the gateway serves, every
record a run puts on the topics held to it, and commands published with kcat."""

import asyncio
import json
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import jsonschema_rs
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from schemas.envelope import latest
from schemas.topics import ALL_TOPICS, DEAD_LETTER_TOPICS
from stack import dlq
from stack.config import ROOT
from tests.asyncapi import parse_asyncapi
from tests.e2e.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Shop,
    bootstrap,
    eventually,
    new_product,
    publish_with_kcat,
)

pytestmark = pytest.mark.e2e

Offsets = dict[TopicPartition, int]


async def _ends(servers: str) -> Offsets:
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(t.name, p) for t in ALL_TOPICS for p in range(t.partitions)]
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def _records(servers: str, start: Offsets) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record written on any topic since ``start``, up to the ends as they are now."""
    end = await _ends(servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        partitions = [tp for tp in end if end[tp] > start.get(tp, 0)]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, start.get(tp, 0))
        deadline = time.monotonic() + 60
        for tp in partitions:
            while await consumer.position(tp) < end[tp]:
                assert time.monotonic() < deadline, f"{tp} not read to its end in time"
                batch = await consumer.getmany(tp, timeout_ms=200)
                records.extend(r for r in batch.get(tp, []) if r.offset < end[tp])
    finally:
        await consumer.stop()
    return records


def test_the_gateway_serves_the_asyncapi_document_that_the_official_parser_accepts(
    shop: Shop,
) -> None:
    served = shop.http.get("/asyncapi.json")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json"
    assert served.text == (ROOT / "docs" / "asyncapi.json").read_text()
    result = parse_asyncapi(served.text)
    assert result.errors == []
    as_yaml = shop.http.get("/asyncapi.yaml")
    assert as_yaml.status_code == 200
    assert yaml.safe_load(as_yaml.text) == served.json()


SAGA_TYPES = {
    "UserRegistered",
    "UserUpdated",
    "AddressAdded",
    "PaymentMethodAdded",
    "CategoryCreated",
    "ProductCreated",
    "ProductUpdated",
    "ProductImageAdded",
    "StockChanged",
    "PlaceOrder",
    "OrderPlaced",
    "OrderRejected",
    "StockReserved",
    "StockReservationFailed",
    "PaymentSucceeded",
    "PaymentFailed",
    "OrderPaid",
    "CancelOrder",
    "OrderCancelled",
    "StockReleased",
    "PaymentRefunded",
    "ShipOrder",
    "OrderShipped",
    "NotificationSent",
}
"""What a demo and the extra calls below put on the topics, at the least."""


def test_every_record_of_a_demo_and_a_saga_matches_its_schema_in_the_document(
    shop: Shop,
) -> None:
    document = shop.http.get("/asyncapi.json").json()
    servers = bootstrap(shop)
    start = asyncio.run(_ends(servers))

    demo = subprocess.run(
        [sys.executable, "-m", "stack.demo"],
        env={
            **shop.env,
            "SHOP_GATEWAY_URL": shop.url,
            "SHOP_ADMIN_EMAIL": ADMIN_EMAIL,
            "SHOP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    _what_the_demo_leaves_out(shop)

    channels = {channel["address"]: channel for channel in document["channels"].values()}
    messages = document["components"]["messages"]
    seen: set[str] = set()

    def check_all() -> bool:
        seen.clear()
        for record in asyncio.run(_records(servers, start)):
            seen.add(_check(record, channels, messages))
        return seen >= SAGA_TYPES

    eventually(check_all, timeout_s=60)


def _what_the_demo_leaves_out(shop: Shop) -> None:
    """A user's address, and a new name sent with kcat (no HTTP route sends UpdateUser); a
    product changed and pictured; an order of a product that does not exist, sent with kcat."""
    admin = shop.admin()
    customer = shop.customer("Events")
    renamed = envelope("UpdateUser", {"user_id": customer.id, "name": "Events Renamed"})
    publish_with_kcat(shop, "users.commands", customer.id, renamed)
    address = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701"}
    assert customer.post("/me/addresses", json=address).status_code < 300
    product = new_product(admin, price="5.00", stock=3)
    assert admin.patch(f"/products/{product}", json={"price": "6.00"}).status_code < 300
    image = {"url": "https://images.example.com/x.png"}
    assert admin.post(f"/products/{product}/images", json=image).status_code < 300
    method = customer.post("/me/payment-methods", json={"method": "card", "token": "tok_visa"})
    order_id = str(uuid.uuid4())
    unknown = {
        "order_id": order_id,
        "user_id": customer.id,
        "items": [{"product_id": str(uuid.uuid4()), "quantity": 1}],
        "payment_method_id": method.json()["id"],
    }  # the gateway refuses it (422): sent with kcat, order_svc rejects it
    publish_with_kcat(shop, "orders.commands", order_id, envelope("PlaceOrder", unknown))


def _check(
    record: ConsumerRecord[bytes, bytes],
    channels: dict[str, Any],
    messages: dict[str, Any],
) -> str:
    """The record's message key in the document, once the record is checked against it."""
    assert record.topic in channels, f"{record.topic} is no channel of the document"
    headers = {name: (value or b"").decode() for name, value in record.headers or ()}
    if record.topic in {t.name for t in DEAD_LETTER_TOPICS}:
        jsonschema_rs.Draft202012Validator(messages["DeadLetter"]["headers"]).validate(headers)
        return "DeadLetter"
    wire = json.loads(record.value or b"null")
    key = f"{wire['type']}.v{wire['version']}"
    where = f"{record.topic}/{record.partition}@{record.offset} ({key})"
    assert key in channels[record.topic]["messages"], f"{where} is not a message of its channel"
    message = messages[key]
    errors = [
        str(error)
        for error in jsonschema_rs.Draft202012Validator(
            message["payload"], validate_formats=True
        ).iter_errors(wire)
    ]
    assert errors == [], f"{where}: {errors}"
    jsonschema_rs.Draft202012Validator(message["headers"]).validate(headers)
    assert record.key is not None
    assert record.key.decode() == str(wire["data"][latest(wire["type"]).KEY_FIELD]), where
    return str(wire["type"])


def envelope(message_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """A version 1 envelope, as another team's service would write it."""
    return {
        "id": str(uuid.uuid4()),
        "type": message_type,
        "version": 1,
        "occurred_at": "2026-12-03T10:00:00Z",
        "correlation_id": str(uuid.uuid4()),
        "data": data,
    }


def dead_letters(shop: Shop, service: str) -> dict[str, dict[str, str]]:
    """The headers of each dead letter of ``service``, by its key."""
    letters = asyncio.run(dlq.read(shop.kafka_access, service))
    return {(letter.key or b"").decode(): letter.headers for letter in letters}


def test_a_command_from_kcat_with_an_unknown_version_or_a_bad_envelope_is_dead_lettered_naming_it(
    shop: Shop,
) -> None:
    admin = shop.admin()
    product = new_product(admin, price="5.00", stock=1)
    restock = envelope("RestockProduct", {"product_id": product, "change": 4, "reason": "Restock"})
    cases = {
        "version 9": ({**restock, "version": 9}, "version 9 (known versions: 1)"),
        "no occurred_at": (
            {k: v for k, v in restock.items() if k != "occurred_at"},
            "not a valid envelope: occurred_at: Field required",
        ),
        "a misspelt field": (
            {**restock, "data": {**restock["data"], "chnage": 4}},
            "invalid RestockProduct v1 data: chnage: Extra inputs are not permitted",
        ),
    }
    for name, (value, _) in cases.items():
        publish_with_kcat(shop, "products.commands", f"{product}-{name}", value)
    publish_with_kcat(shop, "products.commands", product, restock)

    def stocked() -> bool:
        found = httpx.get(f"{shop.url}/products/{product}").json()
        return bool(found["stock"] == 5)

    eventually(stocked)
    keys = {f"{product}-{name}" for name in cases}

    def all_dead_lettered() -> dict[str, dict[str, str]] | None:
        letters = dead_letters(shop, "product_svc")
        return letters if keys <= letters.keys() else None

    letters = eventually(all_dead_lettered)
    for name, (_, reason) in cases.items():
        assert reason in letters[f"{product}-{name}"]["dlq.reason"], letters
