"""The wire format that kcat shows and other programs rely on."""

import json
from decimal import Decimal
from uuid import uuid4

import pytest
from pydantic import ValidationError

import schemas
from schemas.envelope import (
    Message,
    UnknownMessageError,
    contracts,
    decode,
    encode,
    latest,
    to_newest,
    versions_of,
)
from schemas.orders import OrderPlaced, PlaceOrder, PricedItem
from schemas.payments import REFUNDED_BEFORE_V2, PaymentRefunded, PaymentRefundedV1
from schemas.products import STOCK_MAX, CreateProduct, ItemQuantity, RestockProduct, StockChanged
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


def refunded_v1() -> PaymentRefundedV1:
    return PaymentRefundedV1(
        payment_id=uuid4(),
        order_id=uuid4(),
        user_id=uuid4(),
        amount=Decimal("39.80"),
        gateway_id="ch_1",
    )


def test_an_older_version_is_read_as_the_newest_its_upcaster_makes() -> None:
    old = refunded_v1()
    envelope, decoded = decode(encode(old.envelope()))
    assert envelope.version == 1
    assert type(decoded) is PaymentRefunded and decoded.VERSION == 2
    assert decoded.reason == REFUNDED_BEFORE_V2
    assert decoded.model_dump(exclude={"reason"}) == old.model_dump()


def test_the_newest_version_is_what_a_message_is_wrapped_in() -> None:
    newest = PaymentRefunded(**refunded_v1().model_dump(), reason="Changed my mind")
    assert json.loads(encode(newest.envelope()))["version"] == 2
    assert latest("PaymentRefunded") is PaymentRefunded
    assert [cls.VERSION for cls in versions_of("PaymentRefunded")] == [1, 2]


def test_an_unknown_version_names_the_versions_known() -> None:
    wire = json.loads(encode(refunded_v1().envelope()))
    wire["version"] = 7
    with pytest.raises(UnknownMessageError, match=r"version 7 \(known versions: 1, 2\)"):
        decode(json.dumps(wire).encode())


def test_a_v1_is_held_to_the_v1_contract_not_the_newest() -> None:
    wire = json.loads(encode(refunded_v1().envelope()))
    del wire["data"]["gateway_id"]
    with pytest.raises(ValidationError, match="gateway_id"):
        decode(json.dumps(wire).encode())


@pytest.mark.parametrize("message_type", sorted({c.TYPE for c in contracts()}))
def test_every_version_but_the_newest_upcasts_to_the_next(message_type: str) -> None:
    versions = versions_of(message_type)
    assert [cls.VERSION for cls in versions] == list(range(1, len(versions) + 1))
    for older in versions[:-1]:
        assert "upcast" in vars(older), f"{message_type} v{older.VERSION} has no upcaster"
        assert older.upcast.__doc__, f"{message_type} v{older.VERSION}'s upcaster says nothing"
    assert "upcast" not in vars(versions[-1])


def test_an_upcaster_that_does_not_give_the_next_version_is_refused() -> None:
    class Skipping(PaymentRefundedV1):
        def upcast(self) -> PaymentRefundedV1:
            return PaymentRefundedV1(**self.model_dump())

    with pytest.raises(TypeError, match="upcaster gave PaymentRefunded v1"):
        to_newest(Skipping(**refunded_v1().model_dump()))


def test_a_producer_misspelling_a_field_of_an_event_is_refused() -> None:
    with pytest.raises(ValidationError, match="orderid"):
        StockChanged(product_id=uuid4(), change=-1, stock=3, reason="Order", orderid=uuid4())  # type: ignore[call-arg]


def test_money_is_never_written_as_negative_zero() -> None:
    item = PricedItem(product_id=uuid4(), quantity=1, unit_price=Decimal("-0"))
    assert json.loads(item.model_dump_json())["unit_price"] == "0.00"


def test_an_envelope_without_a_time_zone_is_refused_by_name() -> None:
    wire = json.loads(encode(refunded_v1().envelope()))
    wire["occurred_at"] = "2026-12-03T10:00:00"
    with pytest.raises(ValidationError, match="occurred_at"):
        decode(json.dumps(wire).encode())


def test_events_ignore_a_field_they_do_not_know_and_commands_refuse_it() -> None:
    wire = json.loads(encode(refunded_v1().envelope()))
    wire["data"]["added_later"] = "x"
    assert decode(json.dumps(wire).encode())[1].TYPE == "PaymentRefunded"
    command = json.loads(encode(RestockProduct(product_id=uuid4(), change=1).envelope()))
    command["data"]["chnage"] = 2
    with pytest.raises(ValidationError, match="chnage"):
        decode(json.dumps(command).encode())
    placed_wire = json.loads(encode(placed().envelope()))
    placed_wire["data"]["items"][0]["note"] = "x"
    assert decode(json.dumps(placed_wire).encode())[1].TYPE == "OrderPlaced"
    order = {"order_id": uuid4(), "user_id": uuid4(), "payment_method_id": uuid4()}
    place = json.loads(
        encode(
            PlaceOrder(**order, items=(ItemQuantity(product_id=uuid4(), quantity=1),)).envelope()
        )
    )
    place["data"]["items"][0]["quantiy"] = 5
    with pytest.raises(ValidationError, match="quantiy"):
        decode(json.dumps(place).encode())
