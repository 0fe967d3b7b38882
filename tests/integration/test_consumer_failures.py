"""How the shared consumer meets failures, on the real broker and database: an infrastructure
error is retried until it clears and never dead-lettered, and a record is dead-lettered once,
however often its batch comes again."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

import notification_svc.models
from common.consumer import BatchConsumer
from common.handlers import Handlers
from common.inbox import first_delivery
from common.producer import kafka_headers
from common.runtime import ServiceRuntime
from common.statements import Direct
from notification_svc.models import Inbox, Outbox
from notification_svc.settings import Settings
from schemas.envelope import Envelope, encode
from schemas.topics import USERS_EVENTS, dead_letter_topic
from schemas.users import UserRegistered
from tests.conftest import Infra, consumer_record, eventually
from tests.integration.conftest import in_inbox, read_to_end, send

DEADLOCK = Direct(
    text("DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$")
)
"""What PostgreSQL answers the statement it picks to break a deadlock."""


@asynccontextmanager
async def service(
    settings: Settings, handlers: Callable[[ServiceRuntime], Handlers] | None = None
) -> AsyncIterator[ServiceRuntime]:
    """notification_svc's database, inbox, outbox and relay; with ``handlers``, consuming
    ``users.events`` with the test's own."""
    runtime = ServiceRuntime(settings, notification_svc.models)
    if handlers is not None:
        runtime.consume([USERS_EVENTS], handlers(runtime))
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


def registered() -> UserRegistered:
    return UserRegistered(user_id=uuid4(), name="Ann", email="ann@example.com", role="Customer")


async def test_a_deadlock_in_a_direct_statement_is_retried_until_it_clears_not_dead_lettered(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    settings = settings_for(Settings, handler_attempts=3)
    event = registered()
    envelope = event.envelope()
    deadlocks = settings.handler_attempts + 3  # more than a handler error is tried
    calls = 0

    def handlers(runtime: ServiceRuntime) -> Handlers:
        sessionmaker = runtime.sessionmaker

        async def deadlocked_then_applied(delivered: Envelope, message: UserRegistered) -> None:
            nonlocal calls
            if delivered.id != envelope.id:
                return  # the topic's history, from other tests
            calls += 1
            async with sessionmaker.begin() as session:
                fresh = await first_delivery(session, Inbox, delivered.id, delivered.type)
                if fresh and calls <= deadlocks:
                    await DEADLOCK.execute(session)

        return {UserRegistered: deadlocked_then_applied}

    async with service(settings, handlers) as runtime:
        await send(producer, event, envelope=envelope)
        await in_inbox(runtime, Inbox, envelope)

    assert calls == deadlocks + 1
    letters = await read_to_end(infra.kafka_access, dead_letter_topic(settings.service_name))
    assert [letter for letter in letters if letter.key == event.key()] == []


async def test_a_record_whose_headers_are_not_text_is_applied_and_the_consumer_goes_on(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer
) -> None:
    odd, plain = registered(), registered()
    applied: list[UserRegistered] = []

    def handlers(runtime: ServiceRuntime) -> Handlers:
        async def remember(envelope: Envelope, message: UserRegistered) -> None:
            applied.append(message)

        return {UserRegistered: remember}

    async with service(settings_for(Settings), handlers) as runtime:
        await send(producer, odd, headers=[("blank", None), ("binary", b"\xff\xfe")])
        after = await send(producer, plain, key=odd.key())  # on the same partition, after it
        await in_inbox(runtime, Inbox, after)

    assert [m.user_id for m in applied if m.user_id in (odd.user_id, plain.user_id)] == [
        odd.user_id,
        plain.user_id,
    ]


def record_of(
    event: UserRegistered, offset: int, marker: tuple[str, bytes], value: bytes | None = None
) -> Any:
    """The event as the consumer gets it from ``users.events`` at ``offset`` (or another value),
    with the test's ``marker`` header."""
    envelope = event.envelope()
    return consumer_record(
        USERS_EVENTS.name,
        encode(envelope) if value is None else value,
        offset=offset,
        key=event.key(),
        headers=(*kafka_headers(envelope.type, envelope.correlation_id), marker),
    )


async def dead_letters_of(
    runtime: ServiceRuntime, infra: Infra, marker: tuple[str, bytes]
) -> list[Any]:
    """The letters on the service's dead-letter topic of records with the ``marker`` header,
    once its outbox is empty."""

    async def outbox_empty() -> bool:
        async with runtime.sessionmaker() as session:
            return await session.scalar(select(func.count()).select_from(Outbox)) == 0

    await eventually(outbox_empty)
    letters = await read_to_end(
        infra.kafka_access, dead_letter_topic(runtime.settings.service_name)
    )
    return [letter for letter in letters if marker in letter.headers]


async def apply_until_applied(consumer: BatchConsumer, batch: list[Any]) -> None:
    """Deliver ``batch`` as FastStream does: again after it failed, then once more after it was
    applied (a crash before the offset commit)."""
    with pytest.raises(OperationalError):
        await consumer.apply_batch(batch)
    await consumer.apply_batch(batch)
    await consumer.apply_batch(batch)


def connection_lost_once(
    runtime: ServiceRuntime,
) -> Callable[[Envelope, UserRegistered], Awaitable[None]]:
    """A handler whose first call loses the database connection under the batch."""
    sessionmaker = runtime.sessionmaker
    calls = 0

    async def handler(envelope: Envelope, message: UserRegistered) -> None:
        nonlocal calls
        calls += 1
        async with sessionmaker.begin() as session:
            if calls == 1:
                await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    return handler


def batch_consumer(
    runtime: ServiceRuntime, handler: Callable[..., Awaitable[None]]
) -> BatchConsumer:
    """A consumer of the test's own on the service's database, outbox and inbox."""
    return BatchConsumer(
        runtime.settings,
        {UserRegistered: handler},
        runtime.producer,
        runtime.sessionmaker,
        Inbox,
        Outbox,
    )


async def test_a_malformed_record_is_dead_lettered_once_when_its_batch_fails_and_comes_again(
    settings_for: Callable[..., Any], infra: Infra
) -> None:
    marker = ("test", uuid4().hex.encode())
    async with service(settings_for(Settings)) as runtime:
        malformed = record_of(registered(), 0, marker, b"not json")
        tombstone = consumer_record(
            USERS_EVENTS.name, None, offset=1, key=None, headers=(marker, ("blank", None))
        )
        batch = [malformed, tombstone, record_of(registered(), 2, marker)]
        consumer = batch_consumer(runtime, connection_lost_once(runtime))

        await apply_until_applied(consumer, batch)

        letters = await dead_letters_of(runtime, infra, marker)
    assert [(letter.key, letter.value) for letter in letters] == [
        (malformed.key, b"not json"),
        (b"", None),  # no key, no value: an empty key, for a producer needs one of the two
    ]
    assert ("blank", None) in letters[1].headers  # a header without a value, as it came
    headers = [
        {name: value.decode() for name, value in letter.headers if value is not None}
        for letter in letters
    ]
    assert [(h["dlq.topic"], h["dlq.offset"]) for h in headers] == [
        (USERS_EVENTS.name, "0"),
        (USERS_EVENTS.name, "1"),
    ]
    assert headers[0]["dlq.reason"].startswith("not a valid envelope")
    assert headers[1]["dlq.reason"] == "empty value (tombstone)"
    assert consumer.stats.dead_lettered == 2


async def test_a_failing_message_is_dead_lettered_once_when_its_batch_fails_and_comes_again(
    settings_for: Callable[..., Any], infra: Infra
) -> None:
    marker = ("test", uuid4().hex.encode())
    async with service(settings_for(Settings, handler_attempts=2)) as runtime:
        broken = registered()
        batch = [record_of(broken, 0, marker), record_of(registered(), 1, marker)]
        lost_once = connection_lost_once(runtime)

        async def handler(envelope: Envelope, message: UserRegistered) -> None:
            if message.user_id == broken.user_id:
                raise RuntimeError("a bug in the handler")
            await lost_once(envelope, message)

        consumer = batch_consumer(runtime, handler)

        await apply_until_applied(consumer, batch)

        [letter] = await dead_letters_of(runtime, infra, marker)
    assert (letter.key, letter.value) == (batch[0].key, batch[0].value)
    headers = {name: value.decode() for name, value in letter.headers}
    assert headers["dlq.reason"] == "RuntimeError: a bug in the handler"
    assert (headers["dlq.offset"], headers["dlq.attempts"]) == ("0", "2")
    assert headers["type"] == "UserRegistered"  # the record's own headers come along
    assert consumer.stats.dead_lettered == 1
