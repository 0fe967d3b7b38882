"""How the shared consumer meets failures, on the real broker and database: an infrastructure
error is retried until it clears and never dead-lettered."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

from aiokafka import AIOKafkaProducer
from sqlalchemy import text

import notification_svc
from common.broker import Handlers
from common.db import Direct
from common.inbox import first_delivery
from common.runtime import Runtime
from notification_svc.models import Base, Inbox, Outbox
from notification_svc.settings import Settings
from schemas.envelope import Envelope, encode
from schemas.topics import USERS_EVENTS, dead_letter_topic
from schemas.users import UserRegistered
from tests.conftest import Infra
from tests.integration.conftest import in_inbox, read_to_end

DEADLOCK = Direct(
    text("DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$")
)
"""What PostgreSQL answers the statement it picks to break a deadlock."""


@asynccontextmanager
async def consuming(
    settings: Settings, handlers: Callable[[Runtime], Handlers]
) -> AsyncIterator[Runtime]:
    """notification_svc's database, inbox, outbox and relay, consuming ``users.events`` with the
    test's own handlers."""
    runtime = Runtime(
        settings,
        metadata=Base.metadata,
        migrations=Path(notification_svc.__file__).with_name("migrations"),
        outbox=Outbox,
        inbox=Inbox,
    )
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

    def handlers(runtime: Runtime) -> Handlers:
        sessionmaker = runtime.sessionmaker
        assert sessionmaker is not None

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

    async with consuming(settings, handlers) as runtime:
        await producer.send_and_wait(USERS_EVENTS.name, encode(envelope), key=event.key())
        await in_inbox(runtime, Inbox, envelope)

    assert calls == deadlocks + 1
    letters = await read_to_end(infra, dead_letter_topic(settings.service_name))
    assert [letter for letter in letters if letter.key == event.key()] == []
