"""notification_svc on the real broker and database: one notification per event, whatever is
redelivered, sent through its sender port with retries, and its HTTP read API."""

import email
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import RecordMetadata
from sqlalchemy import delete, func, select

from notification_svc.adapters import FakeSender
from notification_svc.app import create_app
from notification_svc.models import Inbox, Notification, Outbox
from notification_svc.ports import NotificationSender
from notification_svc.sending import Dispatcher
from notification_svc.settings import Settings
from schemas.envelope import Envelope, Message
from schemas.orders import (
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
    PricedItem,
)
from schemas.payments import PaymentFailed, PaymentRefunded, PaymentSucceeded
from schemas.products import ItemQuantity
from schemas.topics import NOTIFICATIONS_EVENTS, PAYMENTS_EVENTS
from schemas.users import UserRegistered
from tests.conftest import eventually, unique
from tests.integration.conftest import (
    InProcess,
    committed_offset,
    in_inbox,
    in_process,
    read_to_end,
    send,
)


class NotificationService(InProcess):
    """notification_svc in process, whose sending loop's one step the test calls."""

    @property
    def dispatcher(self) -> Dispatcher:
        dispatcher: Dispatcher = self.app.state.dispatcher
        return dispatcher


@asynccontextmanager
async def notification_service(
    settings_for: Callable[..., Settings],
    *,
    sender: NotificationSender | None = None,
    **overrides: Any,
) -> AsyncIterator[NotificationService]:
    """A notification_svc whose sending loop is off: the test calls its step."""
    values: dict[str, Any] = {
        "sending_enabled": False,
        "notification_backoff_s": 0,
        "notification_batch_size": 500,
    }
    values.update(overrides)
    app = create_app(settings_for(Settings, **values), sender=sender)
    async with in_process(app) as service:
        yield NotificationService(service.app, service.runtime, service.http)


async def consumed(service: NotificationService, *records: RecordMetadata) -> None:
    """Wait until the service's consumer group committed past these records (it commits only
    after applying them)."""
    settings = service.runtime.settings
    for record in records:
        partition = TopicPartition(record.topic, record.partition)

        async def past(partition: TopicPartition = partition, offset: int = record.offset) -> bool:
            found = await committed_offset(
                settings.kafka_access(), settings.consumer_group, partition
            )
            return found is not None and found > offset

        await eventually(past)


async def processed(service: NotificationService, envelope: Envelope) -> None:
    await in_inbox(service.runtime, Inbox, envelope)


async def notifications_of(service: NotificationService, user_id: UUID) -> list[Notification]:
    async with service.runtime.sessionmaker() as session:
        rows = await session.scalars(
            select(Notification)
            .where(Notification.user_id == user_id)
            .order_by(Notification.created_at, Notification.id)
        )
        return list(rows)


async def published(service: NotificationService, user_id: UUID) -> list[Envelope]:
    """What the service published on notifications.events for one user, once its outbox is
    empty (each row is deleted only after Kafka acknowledged it)."""

    async def outbox_empty() -> bool:
        async with service.runtime.sessionmaker() as session:
            return await session.scalar(select(func.count()).select_from(Outbox)) == 0

    await eventually(outbox_empty)
    records = await read_to_end(service.runtime.settings.kafka_access(), NOTIFICATIONS_EVENTS)
    return [
        Envelope.model_validate_json(r.value) for r in records if r.key == str(user_id).encode()
    ]


def registered(name: str = "Ann") -> UserRegistered:
    return UserRegistered(
        user_id=uuid4(),
        name=name,
        email=f"{unique(name.lower())}@example.com",
        role="Customer",
    )


def placed(user_id: UUID, total: str = "39.80") -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid4(),
        user_id=user_id,
        items=(PricedItem(product_id=uuid4(), quantity=2, unit_price=Decimal(total) / 2),),
        total_price=Decimal(total),
        payment_method_id=uuid4(),
    )


async def test_each_event_yields_one_notification_when_delivered_twice(
    settings_for: Callable[..., Settings], producer: AIOKafkaProducer
) -> None:
    user = registered()
    order = placed(user.user_id, "39.80")
    order_id, user_id = order.order_id, user.user_id
    items = (ItemQuantity(product_id=uuid4(), quantity=2),)
    events: list[Message] = [
        user,
        order,
        OrderPaid(order_id=order_id, user_id=user_id, total_price=Decimal("39.80")),
        PaymentSucceeded(
            payment_id=uuid4(),
            order_id=order_id,
            user_id=user_id,
            amount=Decimal("39.80"),
            gateway_id="sim_1",
        ),
        PaymentFailed(
            order_id=order_id, user_id=user_id, amount=Decimal("5.00"), reason="card declined"
        ),
        OrderShipped(order_id=order_id, user_id=user_id),
        OrderCancelled(order_id=order_id, user_id=user_id, reason="changed my mind", items=items),
        PaymentRefunded(
            payment_id=uuid4(),
            order_id=order_id,
            user_id=user_id,
            amount=Decimal("39.80"),
            gateway_id="sim_2",
            reason="changed my mind",
        ),
        OrderRejected(order_id=uuid4(), user_id=user_id, reason="unknown product"),
    ]
    async with notification_service(settings_for) as service:
        sent: list[tuple[Message, Envelope]] = []
        acks: list[RecordMetadata] = []
        for event in events:
            envelope = await send(producer, event, acks=acks)
            await send(producer, event, envelope=envelope, acks=acks)
            sent.append((event, envelope))
        await consumed(service, *acks)

        found = {row.type: row for row in await notifications_of(service, user_id)}
        assert sorted(found) == sorted(
            [
                "Registration",
                "OrderPlaced",
                "PaymentSucceeded",
                "PaymentFailed",
                "OrderShipped",
                "OrderCancelled",
                "PaymentRefunded",
                "OrderRejected",
            ]
        )
        assert len(await notifications_of(service, user_id)) == len(found)
        assert found["Registration"].message == "Welcome to the shop, Ann!"
        assert found["OrderPlaced"].message == f"Your order {order_id} for 39.80 was placed."
        assert "39.80" in found["PaymentSucceeded"].message
        assert str(order_id) in found["PaymentSucceeded"].message
        assert found["PaymentFailed"].message.endswith("failed: card declined.")
        assert "5.00" in found["PaymentFailed"].message
        assert found["OrderCancelled"].message == (
            f"Your order {order_id} was cancelled: changed my mind."
        )
        assert found["OrderShipped"].message == f"Your order {order_id} has shipped."
        assert found["PaymentRefunded"].message == (
            f"Your payment of 39.80 for order {order_id} was refunded: changed my mind."
        )
        assert "unknown product" in found["OrderRejected"].message
        envelopes = {event.TYPE: envelope for event, envelope in sent}
        assert found["OrderPlaced"].event_id == envelopes["OrderPlaced"].id
        assert all(row.status == "Pending" and row.attempts == 0 for row in found.values())
        # written in bulk with time-ordered ids (schemas.ids): inserts at the index's end
        assert {row.id.version for row in found.values()} == {7}


async def test_an_event_the_inbox_forgot_yields_no_second_notification_when_it_comes_again(
    settings_for: Callable[..., Settings], producer: AIOKafkaProducer
) -> None:
    shipped = OrderShipped(order_id=uuid4(), user_id=uuid4())
    async with notification_service(settings_for) as service:
        envelope = await send(producer, shipped)
        await processed(service, envelope)
        async with service.runtime.sessionmaker.begin() as session:
            await session.execute(delete(Inbox).where(Inbox.message_id == envelope.id))

        acks: list[RecordMetadata] = []
        await send(producer, shipped, envelope=envelope, acks=acks)
        await consumed(service, *acks)
        await processed(service, envelope)

        rows = await notifications_of(service, shipped.user_id)
    assert [(row.type, row.event_id) for row in rows] == [("OrderShipped", envelope.id)]


async def test_a_refund_tells_its_reason_and_a_v1_refund_the_one_its_upcaster_gives(
    settings_for: Callable[..., Settings], producer: AIOKafkaProducer
) -> None:
    user_id, old_order, new_order, old_id = uuid4(), uuid4(), uuid4(), uuid4()
    old = {  # as a producer from before version 2 wrote it: no reason
        "id": str(old_id),
        "type": "PaymentRefunded",
        "version": 1,
        "occurred_at": "2026-11-25T02:13:12.806776Z",
        "correlation_id": str(uuid4()),
        "causation_id": None,
        "data": {
            "payment_id": str(uuid4()),
            "order_id": str(old_order),
            "user_id": str(user_id),
            "amount": "39.80",
            "gateway_id": "sim_old",
        },
    }
    new = PaymentRefunded(
        payment_id=uuid4(),
        order_id=new_order,
        user_id=user_id,
        amount=Decimal("12.00"),
        gateway_id="sim_new",
        reason="Cancelled by an admin",
    )
    async with notification_service(settings_for) as service:
        old_record = await producer.send_and_wait(
            PAYMENTS_EVENTS.name,
            json.dumps(old).encode(),
            key=str(old_order).encode(),
            headers=[("type", b"PaymentRefunded")],
        )
        acks: list[RecordMetadata] = []
        new_envelope = await send(producer, new, acks=acks)
        await consumed(service, old_record, *acks)

        found = {
            row.event_id: (row.type, row.message)
            for row in await notifications_of(service, user_id)
        }
    assert found == {
        old_id: (
            "PaymentRefunded",
            f"Your payment of 39.80 for order {old_order} was refunded: Order cancelled.",
        ),
        new_envelope.id: (
            "PaymentRefunded",
            f"Your payment of 12.00 for order {new_order} was refunded: Cancelled by an admin.",
        ),
    }


async def registered_and_placed(
    service: NotificationService, producer: AIOKafkaProducer
) -> tuple[UserRegistered, OrderPlaced, Envelope]:
    """Ann registered and placed an order, both applied: two notifications to send. Returns
    the two events and the order's envelope."""
    user = registered("Ann")
    order = placed(user.user_id, "39.80")
    await processed(service, await send(producer, user))
    order_envelope = await send(producer, order)
    await processed(service, order_envelope)
    return user, order, order_envelope


async def test_send_pending_writes_readable_mail_and_marks_sent_when_the_contact_is_known(
    settings_for: Callable[..., Settings], producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    mailbox = tmp_path / "mailbox"
    async with notification_service(settings_for, mailbox_dir=mailbox) as service:
        user, order, order_envelope = await registered_and_placed(service, producer)

        assert await service.dispatcher.send_pending() >= 2

        welcome, order_placed = await notifications_of(service, user.user_id)
        for row in (welcome, order_placed):
            assert (row.status, row.attempts, row.last_error) == ("Sent", 1, None)
            assert row.sent_at is not None
        mail = email.message_from_bytes((mailbox / f"{order_placed.id}.eml").read_bytes())
        assert mail["To"] == user.email
        assert mail["Subject"] == "Your order was placed"
        text = mail.get_payload()
        assert isinstance(text, str)
        assert text.startswith("Hello Ann,")
        assert f"Your order {order.order_id} for 39.80 was placed." in text
        assert "Welcome to the shop, Ann!" in (mailbox / f"{welcome.id}.eml").read_text()

        events = await published(service, user.user_id)
        assert [(e.type, e.data["type"]) for e in events] == [
            ("NotificationSent", "Registration"),
            ("NotificationSent", "OrderPlaced"),
        ]
        assert events[1].data["notification_id"] == str(order_placed.id)
        assert events[1].correlation_id == order_envelope.correlation_id
        assert events[1].causation_id == order_envelope.id


async def test_send_pending_sends_nothing_again_when_the_notifications_were_sent(
    settings_for: Callable[..., Settings], producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    mailbox = tmp_path / "mailbox"
    async with notification_service(settings_for, mailbox_dir=mailbox) as service:
        user, _, _ = await registered_and_placed(service, producer)
        await service.dispatcher.send_pending()
        files = sorted(mailbox.iterdir())

        await service.dispatcher.send_pending()

        assert sorted(mailbox.iterdir()) == files
        assert len(await published(service, user.user_id)) == 2


async def test_list_notifications_answers_a_users_notifications_newest_first_with_their_status(
    settings_for: Callable[..., Settings], producer: AIOKafkaProducer
) -> None:
    async with notification_service(settings_for, sender=FakeSender()) as service:
        user, _, _ = await registered_and_placed(service, producer)
        await service.dispatcher.send_pending()
        _, order_placed = await notifications_of(service, user.user_id)

        answer = await service.http.get("/notifications", params={"user_id": user.user_id})

    assert answer.status_code == 200
    items = answer.json()["items"]
    assert [(item["type"], item["status"]) for item in items] == [
        ("OrderPlaced", "Sent"),
        ("Registration", "Sent"),
    ]
    assert {"id", "type", "message", "status", "created_at"} <= set(items[0])
    assert items[0]["message"] == order_placed.message


async def test_notification_stays_pending_when_the_users_contact_is_not_known_yet(
    settings_for: Callable[..., Settings], producer: AIOKafkaProducer
) -> None:
    fake = FakeSender()
    async with notification_service(settings_for, sender=fake) as service:
        user = registered("Bo")
        order = placed(user.user_id)
        await processed(service, await send(producer, order))

        await service.dispatcher.send_pending()

        [waiting] = await notifications_of(service, user.user_id)
        assert (waiting.status, waiting.attempts) == ("Pending", 0)
        assert waiting.id not in fake.attempts

        await processed(service, await send(producer, user))
        await service.dispatcher.send_pending()

        rows = await notifications_of(service, user.user_id)
        assert [(row.type, row.status) for row in rows] == [
            ("OrderPlaced", "Sent"),
            ("Registration", "Sent"),
        ]
        assert {d.to for d in fake.delivered if d.notification_id == waiting.id} == {user.email}


@pytest.mark.parametrize("whole_batch", [False, True], ids=["mail refused", "batch refused"])
async def test_failing_sender_retries_then_marks_failed_and_emits_notification_failed(
    settings_for: Callable[..., Settings],
    producer: AIOKafkaProducer,
    whole_batch: bool,
) -> None:
    fake = FakeSender(failures=-1, whole_batch=whole_batch)
    async with notification_service(settings_for, sender=fake, notification_attempts=3) as service:
        user = registered("Cy")
        await processed(service, await send(producer, user))

        for attempt in (1, 2):
            await service.dispatcher.send_pending()
            [row] = await notifications_of(service, user.user_id)
            assert (row.status, row.attempts) == ("Pending", attempt)
            assert row.last_error is not None and "ConnectionError" in row.last_error
        await service.dispatcher.send_pending()
        await service.dispatcher.send_pending()

        [row] = await notifications_of(service, user.user_id)
        assert (row.status, row.attempts, row.sent_at) == ("Failed", 3, None)
        assert fake.attempts[row.id] == 3
        [failed] = await published(service, user.user_id)
        assert failed.type == "NotificationFailed"
        assert failed.data["notification_id"] == str(row.id)
        assert failed.data["type"] == "Registration"
        assert "refused attempt 3" in failed.data["reason"]


async def test_failing_sender_is_retried_until_sent_when_it_recovers(
    settings_for: Callable[..., Settings], producer: AIOKafkaProducer
) -> None:
    fake = FakeSender(failures=2)
    async with notification_service(settings_for, sender=fake) as service:
        user = registered("Di")
        await processed(service, await send(producer, user))

        for _ in range(3):
            await service.dispatcher.send_pending()

        [row] = await notifications_of(service, user.user_id)
        assert (row.status, row.attempts) == ("Sent", 3)
        assert [e.type for e in await published(service, user.user_id)] == ["NotificationSent"]


async def test_failed_send_waits_for_its_backoff_when_sending_is_tried_again_at_once(
    settings_for: Callable[..., Settings], producer: AIOKafkaProducer
) -> None:
    fake = FakeSender(failures=-1)
    async with notification_service(
        settings_for, sender=fake, notification_backoff_s=600
    ) as service:
        user = registered("Ed")
        await processed(service, await send(producer, user))

        await service.dispatcher.send_pending()
        await service.dispatcher.send_pending()

        [row] = await notifications_of(service, user.user_id)
        assert (row.status, row.attempts) == ("Pending", 1)
        assert fake.attempts[row.id] == 1
        assert row.next_attempt_at is not None and row.sent_at is None
