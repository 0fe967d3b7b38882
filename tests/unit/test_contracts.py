"""The wire format that kcat shows and other programs rely on."""

import json
from decimal import Decimal
from uuid import uuid4

import pytest
from pydantic import ValidationError

import schemas
from schemas.envelope import Message, UnknownMessageError, contracts, decode, encode
from schemas.orders import OrderPlaced, PricedItem
from schemas.products import STOCK_MAX, CreateProduct, RestockProduct, StockChanged
from schemas.topics import ALL_TOPICS, DOMAIN_TOPICS


def placed() -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid4(),
        user_id=uuid4(),
        items=(PricedItem(product_id=uuid4(), quantity=2, unit_price=Decimal("19.9")),),
        total_price=Decimal("39.80"),
        payment_method_id=uuid4(),
    )


def test_money_travels_as_decimal_string_with_two_places() -> None:
    wire = json.loads(encode(placed().envelope()))
    assert wire["data"]["total_price"] == "39.80"
    assert wire["data"]["items"][0]["unit_price"] == "19.90"


def test_envelope_carries_metadata_fields() -> None:
    cause = placed().envelope()
    effect = json.loads(encode(placed().caused_by(cause)))
    assert set(effect) == {
        "id",
        "type",
        "version",
        "occurred_at",
        "correlation_id",
        "causation_id",
        "data",
    }
    assert effect["type"] == "OrderPlaced" and effect["version"] == 1
    assert effect["correlation_id"] == str(cause.correlation_id)
    assert effect["causation_id"] == str(cause.id)
    assert effect["occurred_at"].endswith("Z")


def test_decode_round_trips_to_the_typed_message() -> None:
    message = placed()
    envelope, decoded = decode(encode(message.envelope()))
    assert decoded == message
    assert envelope.type == "OrderPlaced"


def test_decode_rejects_unknown_type_and_bad_data() -> None:
    envelope = placed().envelope()
    with pytest.raises(UnknownMessageError):
        decode(encode(envelope.model_copy(update={"type": "OrderTeleported"})))
    with pytest.raises(ValidationError):
        decode(encode(envelope.model_copy(update={"data": {"order_id": "nope"}})))
    with pytest.raises(ValidationError):
        decode(b"[1, 2")


def test_money_rejects_more_than_two_decimals_and_negatives() -> None:
    with pytest.raises(ValidationError):
        PricedItem(product_id=uuid4(), quantity=1, unit_price=Decimal("1.999"))
    with pytest.raises(ValidationError):
        PricedItem(product_id=uuid4(), quantity=1, unit_price=Decimal("-1"))


def test_stock_quantities_are_refused_when_they_do_not_fit_the_32_bit_columns() -> None:
    product_id = uuid4()
    assert RestockProduct(product_id=product_id, change=-STOCK_MAX).change == -STOCK_MAX
    created = CreateProduct(
        product_id=product_id, name="Mug", price=Decimal(1), initial_stock=STOCK_MAX
    )
    assert created.initial_stock == STOCK_MAX
    with pytest.raises(ValidationError, match="change"):
        RestockProduct(product_id=product_id, change=STOCK_MAX + 1)
    with pytest.raises(ValidationError, match="change"):
        RestockProduct(product_id=product_id, change=-STOCK_MAX - 1)
    with pytest.raises(ValidationError, match="initial_stock"):
        CreateProduct(product_id=product_id, name="Mug", price=Decimal(1), initial_stock=2**31)
    with pytest.raises(ValidationError, match="stock"):
        StockChanged(product_id=product_id, change=1, stock=2**31, reason="Restock")


def test_decode_names_the_field_when_a_restock_from_elsewhere_is_out_of_range() -> None:
    envelope = RestockProduct(product_id=uuid4(), change=1).envelope()
    wire = json.loads(encode(envelope))
    wire["data"]["change"] = 2**31

    with pytest.raises(ValidationError, match="change"):
        decode(json.dumps(wire).encode())


@pytest.mark.parametrize("contract", sorted(contracts(), key=lambda c: c.TYPE))
def test_every_contract_names_its_topic_and_an_existing_key_field(contract: type[Message]) -> None:
    assert contract.TOPIC in DOMAIN_TOPICS
    assert contract.KEY_FIELD in contract.model_fields
    assert contract.TYPE[0].isupper()


def test_every_event_of_the_architecture_has_a_contract() -> None:
    named = {
        "UserRegistered",
        "UserUpdated",
        "AddressAdded",
        "CategoryCreated",
        "ProductCreated",
        "ProductUpdated",
        "ProductImageAdded",
        "StockChanged",
        "StockReserved",
        "StockReservationFailed",
        "StockReleased",
        "OrderPlaced",
        "OrderRejected",
        "OrderPaid",
        "OrderCancelled",
        "OrderShipped",
        "PaymentMethodAdded",
        "PaymentSucceeded",
        "PaymentFailed",
        "PaymentRefunded",
        "NotificationSent",
        "NotificationFailed",
        "PlaceOrder",
        "CancelOrder",
        "ShipOrder",
    }
    assert schemas is not None
    assert named <= {contract.TYPE for contract in contracts()}


def test_topic_names_are_unique() -> None:
    names = [topic.name for topic in ALL_TOPICS]
    assert len(names) == len(set(names))
