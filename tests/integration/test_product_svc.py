"""product_svc on the real broker and database: the catalog commands, the stock reservation of
the order saga and its compensation, and the catalog read API."""

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import RecordMetadata
from sqlalchemy import func, select, text

from common.handlers import Handlers
from product_svc import handlers, services
from product_svc.app import create_app
from product_svc.models import Category, Inbox, Inventory, Outbox, Product, Reservation
from product_svc.settings import Settings
from schemas.envelope import Envelope, Message, decode
from schemas.orders import OrderCancelled, OrderPlaced, PricedItem
from schemas.products import (
    STOCK_MAX,
    AddProductImage,
    CategoryCreated,
    CreateCategory,
    CreateProduct,
    ItemQuantity,
    ProductCreated,
    ProductImageAdded,
    ProductUpdated,
    RestockProduct,
    Shortage,
    StockChanged,
    StockReleased,
    StockReservationFailed,
    StockReserved,
    UpdateProduct,
)
from schemas.topics import INVENTORY_EVENTS, ORDERS_EVENTS, PRODUCTS_EVENTS, Topic
from tests.conftest import Infra, eventually, unique
from tests.integration.conftest import InProcess, apply_as_one_batch, in_process, send

# --- helpers -------------------------------------------------------------------------------


async def scalar(product_svc: InProcess, query: Any) -> Any:
    async with product_svc.runtime.sessionmaker() as session:
        return await session.scalar(query)


async def stock_of(product_svc: InProcess, product_id: UUID) -> int | None:
    return await scalar(
        product_svc, select(Inventory.stock).where(Inventory.product_id == product_id)
    )


async def applied(product_svc: InProcess, *envelopes: Envelope) -> bool:
    """All of these messages went through the handler's transaction (the inbox has them)."""
    ids = [envelope.id for envelope in envelopes]
    count = await scalar(
        product_svc, select(func.count()).select_from(Inbox).where(Inbox.message_id.in_(ids))
    )
    return bool(count == len(ids))


def dead_letters(product_svc: InProcess) -> int:
    """How many records this service's consumers sent to its dead-letter topic."""
    return sum(consumer.stats.dead_lettered for consumer in product_svc.runtime.consumers)


async def drained(product_svc: InProcess) -> bool:
    """The relay published (and Kafka acknowledged) everything staged so far."""
    return bool(await scalar(product_svc, select(func.count()).select_from(Outbox)) == 0)


async def published(infra: Infra, topic: Topic) -> list[Message]:
    """Every message on ``topic`` up to its current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    messages: list[Message] = []
    try:
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    try:
                        messages.append(decode(record.value)[1])
                    except ValueError:
                        continue
    finally:
        await consumer.stop()
    return messages


async def events_after(
    product_svc: InProcess, infra: Infra, topic: Topic, *envelopes: Envelope
) -> list[Message]:
    """What the service published once these messages were applied and its outbox drained."""
    await eventually(lambda: applied(product_svc, *envelopes))
    await eventually(lambda: drained(product_svc))
    return await published(infra, topic)


def of(kind: type[Message], messages: Iterable[Message], **fields: Any) -> list[Any]:
    return [
        m
        for m in messages
        if isinstance(m, kind) and all(getattr(m, k) == v for k, v in fields.items())
    ]


async def new_product(
    producer: AIOKafkaProducer, product_svc: InProcess, stock: int, **fields: Any
) -> UUID:
    command = CreateProduct(
        product_id=uuid4(),
        name=fields.pop("name", unique("product")),
        price=fields.pop("price", Decimal("9.99")),
        initial_stock=stock,
        **fields,
    )
    envelope = await send(producer, command)
    await eventually(lambda: applied(product_svc, envelope))
    assert await stock_of(product_svc, command.product_id) == stock
    return command.product_id


def order(*lines: tuple[UUID, int]) -> OrderPlaced:
    items = tuple(
        PricedItem(product_id=product_id, quantity=quantity, unit_price=Decimal("9.99"))
        for product_id, quantity in lines
    )
    return OrderPlaced(
        order_id=uuid4(),
        user_id=uuid4(),
        items=items,
        total_price=sum((i.unit_price * i.quantity for i in items), Decimal(0)),
        payment_method_id=uuid4(),
    )


def cancel(placed: OrderPlaced) -> OrderCancelled:
    return OrderCancelled(
        order_id=placed.order_id,
        user_id=placed.user_id,
        reason="Cancelled by customer",
        items=tuple(
            ItemQuantity(product_id=i.product_id, quantity=i.quantity) for i in placed.items
        ),
    )


def own(product_svc: InProcess) -> tuple[Handlers, type[Inbox]]:
    """product_svc's handlers on this service's database, and its inbox."""
    return handlers.handlers(product_svc.runtime.sessionmaker), Inbox


# --- catalog commands ----------------------------------------------------------------------


async def test_category_and_product_are_stored_and_announced_when_created_by_commands(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        create_category = CreateCategory(category_id=uuid4(), name=unique("Books"))
        create_product = CreateProduct(
            product_id=uuid4(),
            name="Dune",
            description="A desert planet",
            price=Decimal("19.9"),
            category_id=create_category.category_id,
            initial_stock=7,
        )
        category_sent = await send(producer, create_category)
        await eventually(lambda: applied(product_svc, category_sent))
        product_sent = await send(producer, create_product)
        await send(producer, create_product, envelope=product_sent)
        # a retried request: the same command (same product id) in a new message, applied last
        retried = await send(producer, create_product)

        catalog = await events_after(product_svc, infra, PRODUCTS_EVENTS, product_sent, retried)
        stock = await published(infra, INVENTORY_EVENTS)

        assert (
            await scalar(
                product_svc, select(Category.name).where(Category.id == create_category.category_id)
            )
            == create_category.name
        )
        product = await scalar(
            product_svc, select(Product).where(Product.id == create_product.product_id)
        )
        assert (product.name, product.price, product.category_id) == (
            "Dune",
            Decimal("19.90"),
            create_category.category_id,
        )
        assert await stock_of(product_svc, create_product.product_id) == 7
        assert of(CategoryCreated, catalog, category_id=create_category.category_id) == [
            CategoryCreated(category_id=create_category.category_id, name=create_category.name)
        ]
        assert of(ProductCreated, catalog, product_id=create_product.product_id) == [
            ProductCreated(
                product_id=create_product.product_id,
                name="Dune",
                description="A desert planet",
                price=Decimal("19.90"),
                category_id=create_category.category_id,
            )
        ]
        assert of(StockChanged, stock, product_id=create_product.product_id) == [
            StockChanged(product_id=create_product.product_id, change=7, stock=7, reason="Restock")
        ]


async def test_product_is_rejected_when_its_category_does_not_exist(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        command = CreateProduct(
            product_id=uuid4(),
            name="Orphan",
            price=Decimal(1),
            category_id=uuid4(),
            initial_stock=3,
        )
        sent = await send(producer, command)

        catalog = await events_after(product_svc, infra, PRODUCTS_EVENTS, sent)
        stock = await published(infra, INVENTORY_EVENTS)

        assert (
            await scalar(product_svc, select(Product).where(Product.id == command.product_id))
            is None
        )
        assert of(ProductCreated, catalog, product_id=command.product_id) == []
        assert of(StockChanged, stock, product_id=command.product_id) == []


async def test_product_changes_are_applied_and_announced_when_update_image_and_restock_arrive(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        product_id = await new_product(producer, product_svc, 0, description="plain")
        update = UpdateProduct(product_id=product_id, name="Renamed", price=Decimal("5.50"))
        image = AddProductImage(image_id=uuid4(), product_id=product_id, url="https://img/1.png")
        restock = RestockProduct(product_id=product_id, change=4)
        too_much = RestockProduct(product_id=product_id, change=-5, reason="Correction")
        correction = RestockProduct(product_id=product_id, change=-1, reason="Correction")
        sent = [await send(producer, m) for m in (update, image, restock, too_much, correction)]
        await send(producer, restock, envelope=sent[2])
        # the same image (same id) in a new message, applied last
        image_again = await send(producer, image)

        catalog = await events_after(product_svc, infra, PRODUCTS_EVENTS, *sent, image_again)
        stock = await published(infra, INVENTORY_EVENTS)

        assert of(ProductUpdated, catalog, product_id=product_id) == [
            ProductUpdated(
                product_id=product_id,
                name="Renamed",
                description="plain",
                price=Decimal("5.50"),
                category_id=None,
            )
        ]
        assert of(ProductImageAdded, catalog, product_id=product_id) == [
            ProductImageAdded(**image.model_dump())
        ]
        changes = [
            (m.change, m.stock, m.reason) for m in of(StockChanged, stock, product_id=product_id)
        ]
        assert changes == [(4, 4, "Restock"), (-1, 3, "Correction")]
        assert await stock_of(product_svc, product_id) == 3


async def test_restock_is_refused_and_not_dead_lettered_when_stock_would_pass_the_maximum(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        product_id = await new_product(producer, product_svc, STOCK_MAX - 1_500_000)
        first = RestockProduct(product_id=product_id, change=1_000_000)
        too_much = RestockProduct(product_id=product_id, change=1_000_000)
        to_the_top = RestockProduct(product_id=product_id, change=500_000)
        sent = [await send(producer, m) for m in (first, too_much, to_the_top)]

        stock = await events_after(product_svc, infra, INVENTORY_EVENTS, *sent)

        changes = [(m.change, m.stock) for m in of(StockChanged, stock, product_id=product_id)]
        assert changes[1:] == [(1_000_000, STOCK_MAX - 500_000), (500_000, STOCK_MAX)]
        assert await stock_of(product_svc, product_id) == STOCK_MAX
        assert dead_letters(product_svc) == 0


# --- the saga: reservation and release -----------------------------------------------------


async def test_order_placed_reserves_every_item_when_all_are_in_stock(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        a = await new_product(producer, product_svc, 5)
        b = await new_product(producer, product_svc, 3)
        placed = order((a, 2), (b, 1), (a, 1))

        events = await events_after(
            product_svc, infra, INVENTORY_EVENTS, await send(producer, placed)
        )

        assert (await stock_of(product_svc, a), await stock_of(product_svc, b)) == (2, 2)
        [reserved] = of(StockReserved, events, order_id=placed.order_id)
        assert sorted((i.product_id, i.quantity) for i in reserved.items) == sorted(
            [(a, 3), (b, 1)]
        )
        assert reserved.total_price == placed.total_price
        assert reserved.payment_method_id == placed.payment_method_id
        changes = {
            m.product_id: (m.change, m.stock, m.reason)
            for m in of(StockChanged, events, order_id=placed.order_id)
        }
        assert changes == {a: (-3, 2, "Order Placed"), b: (-1, 2, "Order Placed")}
        assert of(StockReservationFailed, events, order_id=placed.order_id) == []


async def test_order_placed_fails_and_leaves_stock_untouched_when_one_item_is_short(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        plenty = await new_product(producer, product_svc, 10)
        scarce = await new_product(producer, product_svc, 1)
        placed = order((plenty, 2), (scarce, 2))
        placed_sent = await send(producer, placed)
        cancelled_sent = await send(producer, cancel(placed))

        events = await events_after(
            product_svc, infra, INVENTORY_EVENTS, placed_sent, cancelled_sent
        )

        assert of(StockReservationFailed, events, order_id=placed.order_id) == [
            StockReservationFailed(
                order_id=placed.order_id,
                user_id=placed.user_id,
                shortages=(Shortage(product_id=scarce, requested=2, available=1),),
            )
        ]
        assert of(StockReserved, events, order_id=placed.order_id) == []
        assert of(StockChanged, events, order_id=placed.order_id) == []
        assert of(StockReleased, events, order_id=placed.order_id) == []
        assert (await stock_of(product_svc, plenty), await stock_of(product_svc, scarce)) == (10, 1)
        reservations = select(func.count()).select_from(Reservation)
        assert (
            await scalar(product_svc, reservations.where(Reservation.order_id == placed.order_id))
            == 0
        )


async def test_order_placed_reserves_once_when_delivered_twice(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        product_id = await new_product(producer, product_svc, 5)
        placed = order((product_id, 2))
        sent = await send(producer, placed)
        await send(producer, placed, envelope=sent)
        # the same order placed again under another message id reserves nothing either
        again = await send(producer, placed)

        events = await events_after(product_svc, infra, INVENTORY_EVENTS, sent, again)

        assert await stock_of(product_svc, product_id) == 3
        assert len(of(StockReserved, events, order_id=placed.order_id)) == 1
        assert len(of(StockChanged, events, order_id=placed.order_id)) == 1
        reservations = select(func.sum(Reservation.quantity)).where(
            Reservation.order_id == placed.order_id
        )
        assert await scalar(product_svc, reservations) == 2


async def test_order_cancelled_releases_stock_once_when_delivered_twice(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        a = await new_product(producer, product_svc, 5)
        b = await new_product(producer, product_svc, 2)
        placed = order((a, 4), (b, 2))
        placed_sent = await send(producer, placed)
        await eventually(lambda: applied(product_svc, placed_sent))
        assert (await stock_of(product_svc, a), await stock_of(product_svc, b)) == (1, 0)
        cancelled = cancel(placed)
        cancelled_sent = await send(producer, cancelled)
        await send(producer, cancelled, envelope=cancelled_sent)
        cancelled_again = await send(producer, cancelled)

        events = await events_after(
            product_svc, infra, INVENTORY_EVENTS, cancelled_sent, cancelled_again
        )

        assert (await stock_of(product_svc, a), await stock_of(product_svc, b)) == (5, 2)
        [released] = of(StockReleased, events, order_id=placed.order_id)
        assert sorted((i.product_id, i.quantity) for i in released.items) == sorted(
            [(a, 4), (b, 2)]
        )
        assert released.user_id == placed.user_id
        releases = {
            m.product_id: (m.change, m.stock)
            for m in of(StockChanged, events, order_id=placed.order_id, reason="Order Cancelled")
        }
        assert releases == {a: (4, 5), b: (2, 2)}
        assert len(of(StockChanged, events, order_id=placed.order_id)) == 4
        unreleased = select(func.count()).where(
            Reservation.order_id == placed.order_id, Reservation.released.is_(False)
        )
        assert await scalar(product_svc, unreleased) == 0


async def test_order_placed_reserves_nothing_when_its_order_was_cancelled_before(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        product_id = await new_product(producer, product_svc, 5)
        placed = order((product_id, 2))
        cancelled_sent = await send(producer, cancel(placed))
        await eventually(lambda: applied(product_svc, cancelled_sent))

        # the order's OrderPlaced re-driven from the dead-letter topic after its cancellation
        events = await events_after(
            product_svc, infra, INVENTORY_EVENTS, await send(producer, placed)
        )

        assert await stock_of(product_svc, product_id) == 5
        reservations = select(func.count()).where(Reservation.order_id == placed.order_id)
        assert await scalar(product_svc, reservations) == 0
        assert of(StockReserved, events, order_id=placed.order_id) == []
        assert of(StockReservationFailed, events, order_id=placed.order_id) == []
        assert of(StockChanged, events, order_id=placed.order_id) == []


async def test_restock_leaves_room_for_held_stock_when_a_cancellation_may_give_it_back(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        product_id = await new_product(producer, product_svc, 10)
        placed = order((product_id, 10))
        placed_sent = await send(producer, placed)
        await eventually(lambda: applied(product_svc, placed_sent))
        no_room = RestockProduct(product_id=product_id, change=STOCK_MAX - 5)
        room = RestockProduct(product_id=product_id, change=STOCK_MAX - 10)
        restocks = [await send(producer, m) for m in (no_room, room)]
        await eventually(lambda: applied(product_svc, *restocks))  # before the cancellation
        cancelled_sent = await send(producer, cancel(placed))

        events = await events_after(product_svc, infra, INVENTORY_EVENTS, cancelled_sent)

        changes = [
            (m.change, m.stock, m.reason) for m in of(StockChanged, events, product_id=product_id)
        ]
        assert changes[1:] == [
            (-10, 0, "Order Placed"),
            (STOCK_MAX - 10, STOCK_MAX - 10, "Restock"),
            (10, STOCK_MAX, "Order Cancelled"),
        ]
        assert len(of(StockReleased, events, order_id=placed.order_id)) == 1
        assert await stock_of(product_svc, product_id) == STOCK_MAX
        assert dead_letters(product_svc) == 0


async def test_a_run_of_orders_reserves_in_arrival_order_from_the_stock_each_leaves(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        scarce = await new_product(producer, product_svc, 5)
        other = await new_product(producer, product_svc, 9)
        first, second, third = (
            order((scarce, 2)),
            order((scarce, 2), (other, 1)),
            order((scarce, 2)),
        )
        # the first order placed again under another message id, in the same batch
        batch = [(placed, placed.envelope()) for placed in (first, second, third, first)]

        runs = await apply_as_one_batch(product_svc.runtime, *own(product_svc), *batch)

        events = await events_after(
            product_svc, infra, INVENTORY_EVENTS, *(envelope for _, envelope in batch)
        )
        assert runs == 1  # the first three together; the repeat starts a run of its own
        assert (await stock_of(product_svc, scarce), await stock_of(product_svc, other)) == (1, 8)
        assert [(m.order_id, m.stock) for m in of(StockChanged, events, product_id=scarce)][
            -2:
        ] == [(first.order_id, 3), (second.order_id, 1)]
        assert len(of(StockReserved, events, order_id=first.order_id)) == 1
        assert len(of(StockReserved, events, order_id=second.order_id)) == 1
        assert of(StockReservationFailed, events, order_id=third.order_id) == [
            StockReservationFailed(
                order_id=third.order_id,
                user_id=third.user_id,
                shortages=(Shortage(product_id=scarce, requested=2, available=1),),
            )
        ]
        held = (
            select(Reservation.order_id, func.sum(Reservation.quantity))
            .where(Reservation.order_id.in_([o.order_id for o in (first, second, third)]))
            .group_by(Reservation.order_id)
        )
        async with product_svc.runtime.sessionmaker() as session:
            assert dict((await session.execute(held)).all()) == {
                first.order_id: 2,
                second.order_id: 3,
            }


async def test_a_run_of_cancellations_gives_back_what_each_order_holds(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        shared = await new_product(producer, product_svc, 6)
        other = await new_product(producer, product_svc, 4)
        first, second = order((shared, 2), (other, 1)), order((shared, 3))
        placed = [await send(producer, o) for o in (first, second)]
        await eventually(lambda: applied(product_svc, *placed))
        assert (await stock_of(product_svc, shared), await stock_of(product_svc, other)) == (1, 3)
        holds_nothing = order((shared, 1))  # never placed here
        batch = [(cancel(o), cancel(o).envelope()) for o in (first, second, holds_nothing)]

        runs = await apply_as_one_batch(
            product_svc.runtime, *own(product_svc), *batch, batch[0]
        )  # and the first again

        events = await events_after(
            product_svc, infra, INVENTORY_EVENTS, *(envelope for _, envelope in batch)
        )
        assert runs == 1
        assert (await stock_of(product_svc, shared), await stock_of(product_svc, other)) == (6, 4)
        releases = [
            (m.order_id, m.change, m.stock)
            for m in of(StockChanged, events, product_id=shared, reason="Order Cancelled")
        ]
        assert releases == [(first.order_id, 2, 3), (second.order_id, 3, 6)]
        assert [len(of(StockReleased, events, order_id=o.order_id)) for o in (first, second)] == [
            1,
            1,
        ]
        assert of(StockReleased, events, order_id=holds_nothing.order_id) == []


async def test_no_order_oversells_when_two_replicas_race_for_the_last_units(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    settings = settings_for(Settings, consumer_session_timeout_ms=6000)
    other = settings.model_copy(update={"consumer_instance_id": f"{settings.consumer_group}-2"})
    async with in_process(create_app(settings)) as one, in_process(create_app(other)) as two:
        consumers = [service.runtime.broker.subscribers[0].consumer for service in (one, two)]

        def orders_partitions() -> list[set[int]]:
            return [
                {tp.partition for tp in consumer.assignment() if tp.topic == ORDERS_EVENTS.name}
                for consumer in consumers
            ]

        def split() -> bool:
            first, second = orders_partitions()
            return (
                bool(first and second)
                and not first & second
                and len(first | second) == ORDERS_EVENTS.partitions
            )

        # the replicas have split the group's partitions (the rebalance is over)
        await eventually(split, timeout_s=40)
        owned = orders_partitions()
        product_id = await new_product(producer, one, 5)
        orders = [order((product_id, 1)) for _ in range(20)]
        sent = [placed.envelope() for placed in orders]
        async with one.runtime.sessionmaker.begin() as gate:
            # hold the row until each replica waits for it with an order in hand, then let go:
            # the two are then sure to contend for the same stock
            await gate.execute(
                select(Inventory.stock).where(Inventory.product_id == product_id).with_for_update()
            )
            acks: list[RecordMetadata] = []
            for placed, envelope in zip(orders, sent, strict=True):
                await send(producer, placed, envelope=envelope, acks=acks)
            used = {metadata.partition for metadata in acks}
            assert all(used & partitions for partitions in owned), (used, owned)
            await eventually(lambda: waiting_for_locks(one, 2))

        events = await events_after(one, infra, INVENTORY_EVENTS, *sent)

        order_ids = {placed.order_id for placed in orders}
        ours = [m for m in events if getattr(m, "order_id", None) in order_ids]
        assert len(of(StockReserved, ours)) == 5
        assert len(of(StockReservationFailed, ours)) == 15
        assert sorted(m.stock for m in of(StockChanged, ours)) == [0, 1, 2, 3, 4]
        assert await stock_of(one, product_id) == 0
        reserved = select(func.sum(Reservation.quantity)).where(
            Reservation.product_id == product_id
        )
        assert await scalar(one, reserved) == 5
        assert orders_partitions() == owned  # no rebalance: each replica applied its own share


async def waiting_for_locks(product_svc: InProcess, count: int) -> bool:
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return bool(await scalar(product_svc, waiting) == count)


# --- the catalog read API ------------------------------------------------------------------


async def test_catalog_lists_filtered_pages_when_products_are_queried(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        http = product_svc.http
        # this database also replays earlier tests' commands: every query names this test's data
        tag = unique("tag")
        books = CreateCategory(category_id=uuid4(), name=unique("Books"))
        games = CreateCategory(category_id=uuid4(), name=unique("Games"))
        for category in (books, games):
            await deliver(producer, product_svc, category)
        for stock, name, description, price, category_id in (
            (3, "Dune", f"Desert SAGA {tag}", "20.00", books.category_id),
            (1, "Emma", f"100% romance {tag}", "8.50", books.category_id),
            (0, "Chess", f"A saga in 64 squares {tag}", "35.00", games.category_id),
        ):
            await new_product(
                producer,
                product_svc,
                stock,
                name=name,
                description=description,
                price=Decimal(price),
                category_id=category_id,
            )
        in_books = {"category_id": str(books.category_id)}

        async def names(**params: Any) -> list[str]:
            response = await http.get("/products", params=params)
            assert response.status_code == 200, response.text
            return [item["name"] for item in response.json()["items"]]

        assert await names(q=tag.upper()) == ["Dune", "Emma", "Chess"]
        assert await names(**in_books) == ["Dune", "Emma"]
        assert await names(**in_books, q="saga") == ["Dune"]
        assert await names(**in_books, q="dUN") == ["Dune"]
        assert await names(**in_books, q="%") == ["Emma"]
        assert await names(q=f"saga in 64 squares {tag}") == ["Chess"]
        assert await names(**in_books, min_price="8.50", max_price="19.99") == ["Emma"]
        assert await names(**in_books, min_price="8.51") == ["Dune"]
        assert await names(q=tag, max_price="20") == ["Dune", "Emma"]

        first = (await http.get("/products", params={"q": tag, "limit": 2})).json()
        assert [item["name"] for item in first["items"]] == ["Dune", "Emma"]
        second = (
            await http.get(
                "/products", params={"q": tag, "limit": 2, "cursor": first["next_cursor"]}
            )
        ).json()
        assert [item["name"] for item in second["items"]] == ["Chess"]
        assert second["next_cursor"] is None
        assert (await http.get("/products", params={"cursor": "garbage"})).status_code == 422
        assert (await http.get("/products", params={"min_price": "-1"})).status_code == 422


async def test_product_detail_answers_its_stock_and_images_or_404_when_unknown(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        http = product_svc.http
        tag = unique("tag")
        books = CreateCategory(category_id=uuid4(), name=unique("Books"))
        await deliver(producer, product_svc, books)
        dune = await new_product(
            producer,
            product_svc,
            3,
            name="Dune",
            description=f"Desert SAGA {tag}",
            price=Decimal("20.00"),
            category_id=books.category_id,
        )
        chess = await new_product(producer, product_svc, 0, name="Chess")
        image = AddProductImage(image_id=uuid4(), product_id=dune, url="https://img/dune.png")
        await deliver(producer, product_svc, image)

        detail = (await http.get(f"/products/{dune}")).json()

        [listed] = (await http.get("/products", params={"q": tag})).json()["items"]
        assert listed == detail
        assert {k: detail[k] for k in ("name", "price", "stock", "category_id", "images")} == {
            "name": "Dune",
            "price": "20.00",
            "stock": 3,
            "category_id": str(books.category_id),
            "images": [{"id": str(image.image_id), "url": image.url}],
        }
        assert {"id", "description", "created_at", "updated_at"} <= set(detail)
        assert (await http.get(f"/products/{chess}")).json()["stock"] == 0
        assert (await http.get(f"/products/{uuid4()}")).status_code == 404


async def test_categories_list_in_pages_and_answer_one_by_id_or_404_when_unknown(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer
) -> None:
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        http = product_svc.http
        books = CreateCategory(category_id=uuid4(), name=unique("Books"))
        games = CreateCategory(category_id=uuid4(), name=unique("Games"))
        for category in (books, games):
            await deliver(producer, product_svc, category)

        seen: list[dict[str, str]] = []
        cursor = None
        while True:
            params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
            body = (await http.get("/categories", params=params)).json()
            assert len(body["items"]) == 1
            seen.extend(body["items"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        ours = [c for c in seen if c["id"] in {str(books.category_id), str(games.category_id)}]
        assert ours == [
            {"id": str(books.category_id), "name": books.name},
            {"id": str(games.category_id), "name": games.name},
        ]
        assert len({c["id"] for c in seen}) == len(seen)
        found = await http.get(f"/categories/{games.category_id}")
        assert found.json() == {"id": str(games.category_id), "name": games.name}
        assert (await http.get(f"/categories/{uuid4()}")).status_code == 404


async def deliver(producer: AIOKafkaProducer, product_svc: InProcess, message: Message) -> None:
    """Send ``message`` and wait until product_svc applied it."""
    sent = await send(producer, message)
    await eventually(lambda: applied(product_svc, sent))


async def test_an_update_issued_before_the_one_applied_last_is_ignored_when_it_arrives_late(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    """The gateway's write went to Kafka while product_svc was slow (202), and the next one was
    applied at once over HTTP: the older, delivered late, must not undo the newer."""
    async with in_process(create_app(settings_for(Settings))) as product_svc:
        product_id = await new_product(producer, product_svc, 0, description="plain")
        older = UpdateProduct(product_id=product_id, price=Decimal("10.00"))
        older_envelope = older.envelope()
        newer = UpdateProduct(product_id=product_id, price=Decimal("20.00"))
        assert (
            await services.update_product(product_svc.runtime.sessionmaker, newer.envelope(), newer)
            is None
        )  # over HTTP, applied first
        await send(producer, older, envelope=older_envelope)  # from Kafka, later
        await eventually(lambda: applied(product_svc, older_envelope))

        price = await scalar(product_svc, select(Product.price).where(Product.id == product_id))
        assert price == Decimal("20.00")
