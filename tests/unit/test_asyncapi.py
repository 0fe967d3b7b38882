"""The AsyncAPI document of the shop, as generated from the contracts."""

import inspect
import json
from decimal import Decimal
from typing import Any
from uuid import uuid4

import jsonschema_rs
import pytest

from common.dead_letters import DeadLetter
from schemas import asyncapi, routing
from schemas.envelope import Envelope, contracts, decode, encode
from schemas.json_schemas import canonical_json
from schemas.orders import OrderPlaced, PricedItem
from schemas.topics import ALL_TOPICS, CONSUMED_TOPICS, DEAD_LETTER_TOPICS
from stack.contracts import ROOT
from tests.asyncapi import parse_asyncapi
from tests.conftest import consumer_record

DOCUMENT = asyncapi.build()
MESSAGES = DOCUMENT["components"]["messages"]


def payload_validator(key: str) -> Any:
    return jsonschema_rs.Draft202012Validator(MESSAGES[key]["payload"], validate_formats=True)


def resolve(ref: str) -> Any:
    node: Any = DOCUMENT
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_every_topic_is_a_channel_with_its_address_and_partitions() -> None:
    channels = DOCUMENT["channels"]
    assert {channel["address"] for channel in channels.values()} == {t.name for t in ALL_TOPICS}
    for topic in ALL_TOPICS:
        kafka = channels[topic.name]["bindings"]["kafka"]
        assert (kafka["topic"], kafka["partitions"]) == (topic.name, topic.partitions)


def test_every_message_version_is_keyed_type_v_version_and_named_by_its_type() -> None:
    for cls in contracts():
        message = MESSAGES[f"{cls.TYPE}.v{cls.VERSION}"]
        assert message["name"] == cls.TYPE
        assert message["payload"]["properties"]["version"] == {
            "const": cls.VERSION,
            "description": "The message's version.",
        }
        assert message["summary"] and "\n" not in message["summary"]
        assert message["bindings"]["kafka"]["key"]["description"].startswith(
            f"The message's `{cls.KEY_FIELD}`"
        )
        channel = DOCUMENT["channels"][cls.TOPIC.name]
        assert resolve(channel["messages"][f"{cls.TYPE}.v{cls.VERSION}"]["$ref"]) is message


def test_the_payload_is_the_whole_envelope_with_money_uuids_and_timestamps_typed() -> None:
    payload = MESSAGES["OrderPlaced.v1"]["payload"]
    assert set(payload["properties"]) == set(Envelope.model_fields)
    assert payload["properties"]["id"]["format"] == "uuid"
    assert payload["properties"]["occurred_at"]["format"] == "date-time"
    data = payload["properties"]["data"]
    money = r"^[0-9]{1,8}(\.[0-9]{1,2})?$"  # DECIMAL(10,2), not negative
    assert data["properties"]["total_price"]["type"] == "string"
    assert data["properties"]["total_price"]["pattern"] == money
    item = data["properties"]["items"]["items"]
    assert item["properties"]["unit_price"]["pattern"] == money
    assert "$ref" not in json.dumps(data) and '"title"' not in json.dumps(data)


def test_a_message_as_the_shop_encodes_it_is_valid_and_a_wrong_one_is_not() -> None:
    envelope = OrderPlaced(
        order_id=uuid4(),
        user_id=uuid4(),
        items=(PricedItem(product_id=uuid4(), quantity=2, unit_price=Decimal("19.9")),),
        total_price=Decimal("39.80"),
        payment_method_id=uuid4(),
    ).envelope()
    wire = json.loads(encode(envelope))
    validator = payload_validator("OrderPlaced.v1")
    assert validator.is_valid(wire)
    for broken in (
        {**wire, "data": {**wire["data"], "total_price": 39.8}},
        {**wire, "data": {**wire["data"], "total_price": "39.805"}},
        {**wire, "data": {**wire["data"], "order_id": "not-a-uuid"}},
        {**wire, "occurred_at": "yesterday"},
        {**wire, "version": 2},
    ):
        assert not validator.is_valid(broken), broken


@pytest.mark.parametrize("key", sorted(k for k in MESSAGES if k != asyncapi.DEAD_LETTER))
def test_every_example_is_accepted_by_its_schema_and_by_its_contract(key: str) -> None:
    (example,) = MESSAGES[key]["examples"]
    payload = example["payload"]
    payload_validator(key).validate(payload)
    envelope, message = decode(json.dumps(payload).encode())
    assert (envelope.type, envelope.version) == (payload["type"], payload["version"])
    assert payload["type"] == message.TYPE
    jsonschema_rs.Draft202012Validator(MESSAGES[key]["headers"]).validate(example["headers"])


def test_every_reference_resolves() -> None:
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(DOCUMENT)
    assert len(refs) > 100
    for ref in refs:
        resolve(ref)


def operations(action: str, service: str) -> dict[str, set[str]]:
    """channel -> message keys, of one service's operations of one action."""
    found: dict[str, set[str]] = {}
    for operation in DOCUMENT["operations"].values():
        if operation["action"] == action and operation["tags"] == [{"name": service}]:
            channel = resolve(operation["channel"]["$ref"])["address"]
            found.setdefault(channel, set()).update(
                ref["$ref"].rsplit("/", 1)[1] for ref in operation["messages"]
            )
    return found


def test_operations_say_who_sends_and_who_receives_each_message() -> None:
    assert operations("send", "order_svc") == {
        "orders.events": {
            f"{cls.TYPE}.v{cls.VERSION}" for cls in contracts() if cls.TOPIC.name == "orders.events"
        },
        "order_svc.dlq": {"DeadLetter"},
    }
    received = operations("receive", "payment_svc")
    assert received == {
        "payments.commands": {"AddPaymentMethod.v1"},
        "inventory.events": {"StockReserved.v1"},
        "orders.events": {"OrderCancelled.v1"},
    }
    assert operations("receive", "notification_svc")["payments.events"] >= {
        "PaymentRefunded.v1",
        "PaymentRefunded.v2",
    }
    assert set(operations("send", "gateway_svc")) == {
        "users.commands",
        "products.commands",
        "orders.commands",
        "payments.commands",
    }


@pytest.mark.parametrize("service", sorted(CONSUMED_TOPICS))
def test_the_routing_table_says_what_each_service_handles(service: str) -> None:
    handlers = __import__(f"{service}.handlers", fromlist=["handlers"])
    arguments = [None] * len(inspect.signature(handlers.handlers).parameters)
    assert set(handlers.handlers(*arguments)) == set(routing.RECEIVES[service])
    assert set(handlers.TOPICS) == {cls.TOPIC for cls in routing.RECEIVES[service]}
    receives = operations("receive", service)
    assert set(receives) == {topic.name for topic in handlers.TOPICS}
    assert operations("send", service)[f"{service}.dlq"] == {"DeadLetter"}


def test_dead_letter_channels_describe_the_headers_a_dead_letter_carries() -> None:
    assert {t.name for t in DEAD_LETTER_TOPICS} <= set(DOCUMENT["channels"])
    record = consumer_record("orders.events", b"x", partition=0, offset=1)
    written = {name for name, _ in DeadLetter(record, "why", 1).headers("order_svc")}
    assert written == set(MESSAGES["DeadLetter"]["headers"]["properties"])


def test_an_event_schema_lets_readers_ignore_new_fields_and_a_command_schema_refuses_them() -> None:
    placed = MESSAGES["OrderPlaced.v1"]["payload"]["properties"]["data"]
    place = MESSAGES["PlaceOrder.v1"]["payload"]["properties"]["data"]
    assert "additionalProperties" not in json.dumps(placed)
    assert place["additionalProperties"] is False
    assert place["properties"]["items"]["items"]["additionalProperties"] is False


def test_an_older_version_says_what_its_upcaster_fills_in() -> None:
    summary = MESSAGES["PaymentRefunded.v1"]["summary"]
    assert "Superseded by v2" in summary and '"Order cancelled"' in summary


def test_the_committed_document_is_the_generated_one() -> None:
    assert (ROOT / "docs" / "asyncapi.json").read_text() == canonical_json(DOCUMENT)


def test_the_official_asyncapi_parser_accepts_the_document() -> None:
    result = parse_asyncapi(asyncapi.document_json())
    assert result.errors == []
    assert {warning["code"] for warning in result.warnings} <= {"asyncapi-latest-version"}
