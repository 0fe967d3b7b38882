"""order_svc on the real broker and database, driven by real envelopes on its topics: the order's
side of the saga, its idempotence, and its HTTP read API."""

from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from order_svc import handlers, queries
from order_svc.app import create_app
from order_svc.models import Inbox, Order, OrderItem
from order_svc.settings import Settings
from schemas.envelope import Envelope, Message
from schemas.orders import (
    CANCELLED,
    PAID,
    PENDING,
    SHIPPED,
    CancelOrder,
    OrderPlaced,
    PlaceOrder,
    ShipOrder,
)
from schemas.payments import PaymentFailed, PaymentSucceeded
from schemas.products import (
    ItemQuantity,
    ProductCreated,
    ProductUpdated,
    Shortage,
    StockReservationFailed,
)
from schemas.topics import ORDERS_EVENTS
from tests.conftest import Infra, eventually
from tests.integration.conftest import (
    InProcess,
    apply_as_one_batch,
    in_inbox,
    in_process,
    read_topic,
    send,
    service_settings,
)


@pytest.fixture(scope="module")
async def orders(infra: Infra) -> AsyncIterator[InProcess]:
    """One order_svc for the module; every test works on its own products and orders."""
    async with in_process(create_app(service_settings(infra, Settings))) as service:
        yield service


async def product(
    orders: InProcess, producer: AIOKafkaProducer, price: str, name: str = "Mug"
) -> UUID:
    """A product known to order_svc's price copy."""
    product_id = uuid4()
    created = ProductCreated(
        product_id=product_id,
        name=name,
        description="",
        price=Decimal(price),
        category_id=None,
    )
    await send(producer, created)
    await eventually(lambda: queries.get_price(orders.runtime.sessionmaker, product_id))
    return product_id


def place(*lines: tuple[UUID, int], order_id: UUID | None = None) -> PlaceOrder:
    return PlaceOrder(
        order_id=order_id or uuid4(),
        user_id=uuid4(),
        items=tuple(ItemQuantity(product_id=p, quantity=q) for p, q in lines),
        payment_method_id=uuid4(),
    )


async def order(orders: InProcess, order_id: UUID) -> queries.OrderPublic | None:
    return await queries.get_order(orders.runtime.sessionmaker, order_id)


async def status_becomes(orders: InProcess, order_id: UUID, status: str) -> Any:
    async def current() -> bool:
        found = await order(orders, order_id)
        return found is not None and found.status == status

    await eventually(current)
    found = await order(orders, order_id)
    assert found is not None
    return found


async def processed(orders: InProcess, envelope: Envelope) -> None:
    await in_inbox(orders.runtime, Inbox, envelope)


async def events_of(infra: Infra, order_id: UUID, until_type: str) -> list[Envelope]:
    """orders.events of one order (one partition, so in order) up to an event of ``until_type``."""
    key = str(order_id).encode()

    def ours(records: Sequence[Any]) -> list[Envelope]:
        return [Envelope.model_validate_json(r.value) for r in records if r.key == key]

    records = await read_topic(
        infra,
        ORDERS_EVENTS.name,
        until=lambda rs: any(e.type == until_type for e in ours(rs)),
    )
    found = ours(records)
    assert any(e.type == until_type for e in found), [e.type for e in found]
    return found


async def placed_order(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> tuple[PlaceOrder, Envelope]:
    """A Pending order and its OrderPlaced envelope (the cause of the saga's next steps)."""
    command = place((await product(orders, producer, "12.50"), 2))
    await send(producer, command)
    events = await events_of(infra, command.order_id, "OrderPlaced")
    return command, events[-1]


def paid(command: PlaceOrder, total: str = "25.00") -> PaymentSucceeded:
    return PaymentSucceeded(
        payment_id=uuid4(),
        order_id=command.order_id,
        user_id=command.user_id,
        amount=Decimal(total),
        gateway_id=f"sim_{command.order_id.hex[:8]}",
    )


async def test_place_order_stores_pending_order_with_exact_total_when_products_are_known(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> None:
    mug = await product(orders, producer, "19.99")
    tea = await product(orders, producer, "0.10", name="Tea")
    command = place((mug, 1), (tea, 3), (mug, 2))

    sent = await send(producer, command)

    found = await status_becomes(orders, command.order_id, PENDING)
    assert found.total_price == Decimal("60.27")
    assert found.reason is None
    assert {(line.product_id, line.quantity, line.unit_price) for line in found.items} == {
        (mug, 3, Decimal("19.99")),
        (tea, 3, Decimal("0.10")),
    }
    [event] = await events_of(infra, command.order_id, "OrderPlaced")
    assert event.correlation_id == sent.correlation_id != sent.id
    assert event.causation_id == sent.id
    placed = OrderPlaced.from_envelope(event)
    assert placed.total_price == Decimal("60.27")
    assert event.data["total_price"] == "60.27"
    assert placed.user_id == command.user_id
    assert placed.payment_method_id == command.payment_method_id
    assert sorted((i.product_id, i.quantity, i.unit_price) for i in placed.items) == sorted(
        [(mug, 3, Decimal("19.99")), (tea, 3, Decimal("0.10"))]
    )


async def test_place_order_uses_the_updated_price_when_the_product_changed(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> None:
    mug = await product(orders, producer, "5.00")
    update = ProductUpdated(
        product_id=mug, name="Mug", description="", price=Decimal("7.25"), category_id=None
    )
    await send(producer, update)

    async def repriced() -> bool:
        price = await queries.get_price(orders.runtime.sessionmaker, mug)
        return price is not None and price.price == Decimal("7.25")

    await eventually(repriced)
    command = place((mug, 2))
    await send(producer, command)

    assert (await status_becomes(orders, command.order_id, PENDING)).total_price == Decimal("14.50")


async def test_redelivered_price_update_changes_nothing_when_a_newer_one_was_applied(
    orders: InProcess, producer: AIOKafkaProducer
) -> None:
    mug = await product(orders, producer, "5.00")

    def update(price: str) -> ProductUpdated:
        return ProductUpdated(
            product_id=mug, name="Mug", description="", price=Decimal(price), category_id=None
        )

    older = await send(producer, update("6.00"))
    await send(producer, update("8.00"))
    await send(producer, update("6.00"), envelope=older)
    # A marker on the same partition (same key), applied only after the redelivery was.
    other = ProductCreated(
        product_id=uuid4(), name="Bowl", description="", price=Decimal(1), category_id=None
    )
    await send(producer, other, key=update("8.00").key())
    await eventually(lambda: queries.get_price(orders.runtime.sessionmaker, other.product_id))

    price = await queries.get_price(orders.runtime.sessionmaker, mug)
    assert price is not None and price.price == Decimal("8.00")


async def test_place_order_cancels_and_emits_order_rejected_when_a_product_is_unknown(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> None:
    mug = await product(orders, producer, "3.00")
    ghost = uuid4()
    command = place((mug, 1), (ghost, 1))

    sent = await send(producer, command)

    found = await status_becomes(orders, command.order_id, CANCELLED)
    assert found.reason is not None and str(ghost) in found.reason
    assert found.items == ()
    assert [(step.status, step.reason) for step in found.history] == [(CANCELLED, found.reason)]
    [event] = await events_of(infra, command.order_id, "OrderRejected")
    assert event.correlation_id == sent.correlation_id
    assert event.data["reason"] == found.reason
    assert event.data["user_id"] == str(command.user_id)


@pytest.mark.parametrize(
    ("price", "quantity", "why"),
    [
        ("99999999.99", 1000, "exceeds the maximum of 99999999.99"),  # the total's DECIMAL(10,2)
        ("0.01", 2**31, f"quantity above {2**31 - 1}"),  # order_items.quantity's INTEGER
    ],
)
async def test_place_order_cancels_and_emits_order_rejected_when_it_does_not_fit_its_columns(
    orders: InProcess,
    producer: AIOKafkaProducer,
    infra: Infra,
    price: str,
    quantity: int,
    why: str,
) -> None:
    command = place((await product(orders, producer, price), quantity))

    sent = await send(producer, command)

    found = await status_becomes(orders, command.order_id, CANCELLED)
    assert found.reason is not None and why in found.reason
    assert found.total_price == Decimal("0.00")
    assert found.items == ()
    assert [(step.status, step.reason) for step in found.history] == [(CANCELLED, found.reason)]
    [event] = await events_of(infra, command.order_id, "OrderRejected")
    assert event.causation_id == sent.id
    assert event.data["reason"] == found.reason


async def test_stock_reservation_failed_cancels_with_reason_and_emits_order_cancelled(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> None:
    command, placed = await placed_order(orders, producer, infra)
    product_id = command.items[0].product_id
    shortage = Shortage(product_id=product_id, requested=2, available=1)
    failed = StockReservationFailed(
        order_id=command.order_id, user_id=command.user_id, shortages=(shortage,)
    )

    await send(producer, failed, cause=placed)

    found = await status_becomes(orders, command.order_id, CANCELLED)
    assert found.reason == "out of stock: Mug (requested 2, available 1)"
    events = await events_of(infra, command.order_id, "OrderCancelled")
    assert [e.type for e in events] == ["OrderPlaced", "OrderCancelled"]
    cancelled = events[-1]
    assert cancelled.correlation_id == placed.correlation_id
    assert cancelled.data["reason"] == found.reason
    assert cancelled.data["items"] == [{"product_id": str(product_id), "quantity": 2}]


async def test_payment_succeeded_marks_paid_and_emits_order_paid_when_pending(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> None:
    command, placed = await placed_order(orders, producer, infra)

    await send(producer, paid(command), cause=placed)

    found = await status_becomes(orders, command.order_id, PAID)
    assert found.reason is None
    events = await events_of(infra, command.order_id, "OrderPaid")
    assert [e.type for e in events] == ["OrderPlaced", "OrderPaid"]
    assert events[-1].data["total_price"] == "25.00"
    assert events[-1].correlation_id == placed.correlation_id


async def test_payment_failed_cancels_with_reason_when_pending(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> None:
    command, placed = await placed_order(orders, producer, infra)
    failed = PaymentFailed(
        order_id=command.order_id,
        user_id=command.user_id,
        amount=Decimal("25.00"),
        reason="card declined",
    )

    await send(producer, failed, cause=placed)

    found = await status_becomes(orders, command.order_id, CANCELLED)
    assert found.reason == "payment failed: card declined"
    events = await events_of(infra, command.order_id, "OrderCancelled")
    assert events[-1].data["reason"] == "payment failed: card declined"


async def test_cancel_order_cancels_and_emits_order_cancelled_when_paid(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> None:
    command, placed = await placed_order(orders, producer, infra)
    await send(producer, paid(command), cause=placed)
    await status_becomes(orders, command.order_id, PAID)

    await send(producer, CancelOrder(order_id=command.order_id, reason="changed my mind"))

    found = await status_becomes(orders, command.order_id, CANCELLED)
    assert found.reason == "changed my mind"
    events = await events_of(infra, command.order_id, "OrderCancelled")
    assert [e.type for e in events] == ["OrderPlaced", "OrderPaid", "OrderCancelled"]
    assert events[-1].data["items"] == [
        {"product_id": str(command.items[0].product_id), "quantity": 2}
    ]


async def test_payment_succeeded_changes_nothing_when_the_order_was_cancelled_first(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> None:
    command, placed = await placed_order(orders, producer, infra)
    await send(producer, CancelOrder(order_id=command.order_id))
    await status_becomes(orders, command.order_id, CANCELLED)

    late = await send(producer, paid(command), cause=placed)
    await processed(orders, late)

    found = await order(orders, command.order_id)
    assert found is not None and found.status == CANCELLED
    assert found.reason == "Cancelled by customer"
    assert [step.status for step in found.history] == [PENDING, CANCELLED]


async def test_ship_order_ships_and_emits_order_shipped_when_paid(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> None:
    command, placed = await placed_order(orders, producer, infra)
    await send(producer, paid(command), cause=placed)
    await status_becomes(orders, command.order_id, PAID)

    await send(producer, ShipOrder(order_id=command.order_id))

    await status_becomes(orders, command.order_id, SHIPPED)
    events = await events_of(infra, command.order_id, "OrderShipped")
    assert [e.type for e in events] == ["OrderPlaced", "OrderPaid", "OrderShipped"]


async def test_ship_order_is_ignored_when_pending(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> None:
    command, _ = await placed_order(orders, producer, infra)

    ship = await send(producer, ShipOrder(order_id=command.order_id))
    await processed(orders, ship)

    found = await order(orders, command.order_id)
    assert found is not None and found.status == PENDING
    assert [step.status for step in found.history] == [PENDING]
    # The same partition, so a later event proves no OrderShipped was published before it.
    await send(producer, CancelOrder(order_id=command.order_id))
    events = await events_of(infra, command.order_id, "OrderCancelled")
    assert [e.type for e in events] == ["OrderPlaced", "OrderCancelled"]


async def test_duplicate_deliveries_change_nothing_when_the_same_envelopes_arrive_twice(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> None:
    mug = await product(orders, producer, "4.00")
    command = place((mug, 1))
    sent = await send(producer, command)
    await send(producer, command, envelope=sent)
    events = await events_of(infra, command.order_id, "OrderPlaced")
    payment = paid(command, "4.00")
    payment_envelope = await send(producer, payment, cause=events[-1])
    await send(producer, payment, envelope=payment_envelope)
    await status_becomes(orders, command.order_id, PAID)
    shipping = ShipOrder(order_id=command.order_id)
    ship = await send(producer, shipping)
    await send(producer, shipping, envelope=ship)
    await status_becomes(orders, command.order_id, SHIPPED)

    # Markers after the duplicates on the same partitions: once they are applied, so are those.
    after_payment = PaymentFailed(
        order_id=command.order_id, user_id=command.user_id, amount=Decimal("4.00"), reason="late"
    )
    await processed(orders, await send(producer, after_payment, cause=events[-1]))
    await processed(orders, await send(producer, CancelOrder(order_id=command.order_id)))

    found = await order(orders, command.order_id)
    assert found is not None and found.status == SHIPPED
    assert [step.status for step in found.history] == [PENDING, PAID, SHIPPED]
    assert found.total_price == Decimal("4.00") and len(found.items) == 1
    async with orders.runtime.sessionmaker() as session:
        lines = await session.scalar(
            select(func.count()).where(OrderItem.order_id == command.order_id)
        )
    assert lines == 1
    events = await events_of(infra, command.order_id, "OrderShipped")
    assert [e.type for e in events] == ["OrderPlaced", "OrderPaid", "OrderShipped"]


async def test_one_order_is_created_when_two_place_order_commands_share_its_id(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> None:
    mug = await product(orders, producer, "2.00")
    first = place((mug, 1))
    retried = place((mug, 5), order_id=first.order_id)

    await send(producer, first)
    second = await send(producer, retried)
    await processed(orders, second)

    found = await order(orders, first.order_id)
    assert found is not None and found.status == PENDING
    assert found.user_id == first.user_id
    assert found.total_price == Decimal("2.00")
    assert [line.quantity for line in found.items] == [1]
    assert [step.status for step in found.history] == [PENDING]
    async with orders.runtime.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(Order).where(Order.id == first.order_id)
        )
    assert count == 1
    await send(producer, CancelOrder(order_id=first.order_id))
    events = await events_of(infra, first.order_id, "OrderCancelled")
    assert [e.type for e in events] == ["OrderPlaced", "OrderCancelled"]


async def as_one_batch(orders: InProcess, *messages: Message) -> int:
    """Apply these messages, each in a new envelope, as one batch (see apply_as_one_batch);
    returns how many runs were applied together."""
    table = handlers.handlers(orders.runtime.sessionmaker)
    return await apply_as_one_batch(
        orders.runtime, table, Inbox, *((message, message.envelope()) for message in messages)
    )


async def placed_through_kafka(
    orders: InProcess, producer: AIOKafkaProducer, *commands: PlaceOrder
) -> None:
    for command in commands:
        await processed(orders, await send(producer, command))


def failed(command: PlaceOrder, total: str) -> PaymentFailed:
    return PaymentFailed(
        order_id=command.order_id,
        user_id=command.user_id,
        amount=Decimal(total),
        reason="declined",
    )


async def test_a_run_of_place_order_commands_applies_each_as_alone_when_batched_together(
    orders: InProcess, producer: AIOKafkaProducer
) -> None:
    mug = await product(orders, producer, "12.50")
    existing = place((mug, 1))
    await placed_through_kafka(orders, producer, existing)
    a, b, unknown = place((mug, 2)), place((mug, 1), (mug, 1)), place((uuid4(), 1))
    same_id = place((mug, 5), order_id=existing.order_id)

    runs = await as_one_batch(orders, a, b, unknown, same_id)

    found = [await order(orders, c.order_id) for c in (a, b, unknown, existing)]
    assert [(o.status, o.total_price) if o else None for o in found] == [
        (PENDING, Decimal("25.00")),
        (PENDING, Decimal("25.00")),
        (CANCELLED, Decimal("0.00")),
        (PENDING, Decimal("12.50")),  # the second command under its id changed nothing
    ]
    assert [(i.quantity, len(o.items)) for o in found[1:2] if o for i in o.items] == [(2, 1)]
    assert runs == 1


async def test_a_run_of_payment_outcomes_moves_each_order_as_alone_when_batched_together(
    orders: InProcess, producer: AIOKafkaProducer
) -> None:
    mug = await product(orders, producer, "12.50")
    a, b, existing = place((mug, 2)), place((mug, 1), (mug, 1)), place((mug, 1))
    unknown = place((uuid4(), 1))
    await placed_through_kafka(orders, producer, a, b, unknown, existing)

    runs = await as_one_batch(
        orders, paid(a), paid(unknown), failed(b, "25.00"), failed(existing, "12.50")
    )

    found = [await order(orders, c.order_id) for c in (a, b, unknown, existing)]
    assert [o.status if o else None for o in found] == [PAID, CANCELLED, CANCELLED, CANCELLED]
    reasons = [o.reason or "" if o else "" for o in found]
    assert reasons[0] == ""
    assert reasons[1] == reasons[3] == "payment failed: declined"
    assert reasons[2].startswith("unknown products")  # as rejected: a payment moves it no more
    assert found[0] is not None
    assert [change.status for change in found[0].history] == [PENDING, PAID]
    assert runs == 2  # the successes, then the failures


async def test_runs_of_cancellations_then_shipments_move_each_order_as_alone_when_batched(
    orders: InProcess, producer: AIOKafkaProducer
) -> None:
    mug = await product(orders, producer, "12.50")
    a, b, c = place((mug, 2)), place((mug, 2)), place((mug, 3))
    await placed_through_kafka(orders, producer, a, b, c)
    await processed(orders, await send(producer, paid(a)))
    await processed(orders, await send(producer, failed(b, "25.00")))

    cancelling = await as_one_batch(
        orders, CancelOrder(order_id=c.order_id), CancelOrder(order_id=b.order_id)
    )
    shipping = await as_one_batch(
        orders, ShipOrder(order_id=a.order_id), ShipOrder(order_id=c.order_id)
    )

    found = [await order(orders, command.order_id) for command in (a, b, c)]
    assert [(o.status, o.reason) if o else None for o in found] == [
        (SHIPPED, None),
        (CANCELLED, "payment failed: declined"),  # cancelled already: left as it was
        (CANCELLED, "Cancelled by customer"),  # and so not shipped
    ]
    assert (cancelling, shipping) == (1, 1)


async def test_history_lists_every_step_in_order_when_the_order_is_shipped(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> None:
    command, placed = await placed_order(orders, producer, infra)
    await send(producer, paid(command), cause=placed)
    await status_becomes(orders, command.order_id, PAID)
    await send(producer, ShipOrder(order_id=command.order_id))
    await status_becomes(orders, command.order_id, SHIPPED)

    response = await orders.http.get(f"/orders/{command.order_id}")

    assert response.status_code == 200
    body = response.json()
    assert [step["status"] for step in body["history"]] == [PENDING, PAID, SHIPPED]
    assert body["history"][1]["reason"] == f"payment succeeded (sim_{command.order_id.hex[:8]})"
    times = [step["at"] for step in body["history"]]
    assert times == sorted(times)
    assert body["status"] == SHIPPED and body["reason"] is None
    assert body["total_price"] == "25.00"
    assert body["items"] == [
        {"product_id": str(command.items[0].product_id), "quantity": 2, "unit_price": "12.50"}
    ]
    assert body["user_id"] == str(command.user_id)


async def test_read_order_answers_404_when_the_order_is_unknown(orders: InProcess) -> None:
    response = await orders.http.get(f"/orders/{uuid4()}")

    assert response.status_code == 404


async def test_read_order_status_answers_owner_and_status_or_404_when_unknown(
    orders: InProcess, producer: AIOKafkaProducer, infra: Infra
) -> None:
    command, _ = await placed_order(orders, producer, infra)

    found = await orders.http.get(f"/orders/{command.order_id}/status")
    missing = await orders.http.get(f"/orders/{uuid4()}/status")

    assert found.json() == {
        "id": str(command.order_id),
        "user_id": str(command.user_id),
        "status": PENDING,
    }
    assert missing.status_code == 404


async def test_list_orders_pages_one_users_orders_newest_first(
    orders: InProcess, producer: AIOKafkaProducer
) -> None:
    mug = await product(orders, producer, "1.00")
    user_id = uuid4()
    placed_ids = []
    for quantity in (1, 2, 3):
        command = place((mug, quantity)).model_copy(update={"user_id": user_id})
        await send(producer, command)
        await status_becomes(orders, command.order_id, PENDING)
        placed_ids.append(str(command.order_id))
    await send(producer, place((mug, 1)))  # someone else's

    first = (await orders.http.get("/orders", params={"user_id": str(user_id), "limit": 2})).json()
    rest = (
        await orders.http.get(
            "/orders",
            params={"user_id": str(user_id), "limit": 2, "cursor": first["next_cursor"]},
        )
    ).json()

    assert [o["id"] for o in first["items"] + rest["items"]] == placed_ids[::-1]
    assert first["next_cursor"] is not None and rest["next_cursor"] is None
    assert first["items"][0]["total_price"] == "3.00"
    assert set(first["items"][0]) == {
        "id",
        "user_id",
        "status",
        "reason",
        "total_price",
        "created_at",
    }
    assert all(o["user_id"] == str(user_id) for o in first["items"] + rest["items"])


async def test_list_orders_answers_422_when_the_cursor_is_malformed(orders: InProcess) -> None:
    response = await orders.http.get("/orders", params={"cursor": "not-a-cursor"})

    assert response.status_code == 422


async def test_read_price_answers_the_price_copy_or_404_when_unknown(
    orders: InProcess, producer: AIOKafkaProducer
) -> None:
    mug = await product(orders, producer, "9.90", name="Big mug")

    known = await orders.http.get(f"/products/{mug}/price")
    unknown = await orders.http.get(f"/products/{uuid4()}/price")

    assert known.status_code == 200
    assert known.json() == {"product_id": str(mug), "name": "Big mug", "price": "9.90"}
    assert unknown.status_code == 404
