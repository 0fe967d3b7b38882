"""Services run in-process against the real broker and database, each test with its own
databases and consumer groups."""

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI

from common.consumer import BatchConsumer
from common.handlers import Handlers
from common.inbox import InboxMixin
from common.kafka_access import KafkaAccess
from common.producer import kafka_headers
from common.runtime import Runtime
from common.settings import ServiceSettings
from schemas.envelope import Envelope, Message, encode
from schemas.topics import Topic
from tests.conftest import Infra, consumer_record, eventually, unique

pytestmark = pytest.mark.integration

S = TypeVar("S", bound=ServiceSettings)


@pytest.fixture
def settings_for(infra: Infra) -> Callable[[type[S]], S]:
    """Settings of one service pointing at the test infrastructure, isolated from other tests."""

    def build(settings_class: type[S], **overrides: Any) -> S:
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": infra.kafka_bootstrap,
            "database_url": infra.database_url,
            "database_name": unique(settings_class.service_name),
            "consumer_group": unique(settings_class.service_name),
            "retry_backoff_s": 0.01,
        }
        values.update(overrides)
        return settings_class(**values)

    return build


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[Runtime]:
    """Run the app's lifespan (migrations, consumers, relay) for the duration of the block."""
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        yield runtime


@pytest.fixture
async def producer(infra: Infra) -> AsyncIterator[AIOKafkaProducer]:
    kafka_producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await kafka_producer.start()
    yield kafka_producer
    await kafka_producer.stop()


async def read_topic(
    infra: Infra,
    topic: str,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout_s: float = 20.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topic`` from the beginning until ``until(records)`` holds or the time is up."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=infra.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while not until(records) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def read_to_end(access: KafkaAccess, topic: Topic) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` up to its end offsets at the time of the call."""
    consumer = AIOKafkaConsumer(**access.client_options(), enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + 20
        for partition in partitions:
            while await consumer.position(partition) < end[partition]:
                assert time.monotonic() < deadline, f"{topic.name} not read to its end in time"
                batch = await consumer.getmany(partition, timeout_ms=200)
                records.extend(batch.get(partition, []))
    finally:
        await consumer.stop()
    return records


async def in_inbox(runtime: Runtime, inbox: type[InboxMixin], envelope: Envelope) -> None:
    """Wait until the service applied (or deliberately ignored) this message: its inbox has it."""

    async def recorded() -> bool:
        assert runtime.sessionmaker is not None
        async with runtime.sessionmaker() as session:
            return await session.get(inbox, envelope.id) is not None

    await eventually(recorded)


async def committed_offset(infra: Infra, group: str, partition: TopicPartition) -> int | None:
    """The offset ``group`` last committed on ``partition`` in the broker (None: never)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group, partitions=[partition])
    finally:
        await admin.close()
    found = committed.get(partition)
    return None if found is None or found.offset < 0 else found.offset


async def apply_as_one_batch(
    runtime: Runtime,
    handlers: Handlers,
    inbox: type[InboxMixin],
    *messages: tuple[Message, Envelope],
) -> int:
    """Apply these messages as one batch of records, as if one fetch had brought them in this
    order, through the consumer's fast path (where a set-based use case takes each run of its
    type at once); returns how many runs were applied together. The consumer is one of the
    test's own, with the service's handlers, database and producer: the service's consumer may
    meanwhile replay the topics' history, and its counters would count that too."""
    records = [
        consumer_record(
            message.TOPIC.name,
            encode(envelope),
            offset=offset,
            key=message.key(),
            headers=tuple(kafka_headers(envelope.type, envelope.correlation_id)),
        )
        for offset, (message, envelope) in enumerate(messages)
    ]
    consumer = BatchConsumer(
        runtime.settings, handlers, runtime.producer, runtime.sessionmaker, inbox
    )
    await consumer.apply_batch(records)
    return consumer.stats.runs
