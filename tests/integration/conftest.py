"""Services run in-process against the real broker and database, each test with its own
databases and consumer groups."""

import functools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata
from fastapi import FastAPI

from common.consumer import BatchConsumer
from common.handlers import Handlers
from common.inbox import InboxMixin
from common.kafka_access import KafkaAccess
from common.producer import kafka_headers
from common.runtime import ServiceRuntime
from common.settings import ServiceSettings
from schemas.envelope import Envelope, Message, encode
from schemas.topics import Topic
from tests.conftest import Infra, consumer_record, eventually, unique

pytestmark = pytest.mark.integration

S = TypeVar("S", bound=ServiceSettings)


def service_settings(infra: Infra, settings_class: type[S], **overrides: Any) -> S:
    """Settings of one service pointing at the test infrastructure, isolated from other tests
    (a database and a consumer group of its own)."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": infra.kafka_bootstrap,
        "database_url": infra.database_url,
        "database_name": unique(settings_class.service_name),
        "consumer_group": unique(settings_class.service_name),
        "retry_backoff_s": 0.01,
    }
    values.update(overrides)
    return settings_class(**values)


@pytest.fixture
def settings_for(infra: Infra) -> Callable[..., Any]:
    """:func:`service_settings` on this session's infrastructure."""
    return functools.partial(service_settings, infra)


@dataclass(frozen=True)
class InProcess:
    """A service running in this process: its app, its runtime (its database among the rest)
    and an HTTP client that calls the app without a socket."""

    app: FastAPI
    runtime: ServiceRuntime
    http: httpx.AsyncClient


@asynccontextmanager
async def in_process(app: FastAPI) -> AsyncIterator[InProcess]:
    """Run the app's lifespan (migrations, consumers, relay) for the duration of the block."""
    async with app.router.lifespan_context(app):
        runtime: ServiceRuntime = app.state.runtime
        transport = httpx.ASGITransport(app=app)
        base_url = f"http://{runtime.settings.service_name}"
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield InProcess(app, runtime, http)


@pytest.fixture
async def producer(infra: Infra) -> AsyncIterator[AIOKafkaProducer]:
    kafka_producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await kafka_producer.start()
    yield kafka_producer
    await kafka_producer.stop()


async def send(
    producer: AIOKafkaProducer,
    message: Message,
    *,
    cause: Envelope | None = None,
    envelope: Envelope | None = None,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes | None]] = (),
    acks: list[RecordMetadata] | None = None,
) -> Envelope:
    """Publish ``message`` on its topic as a service's producer would, once Kafka acknowledged
    it, and return its envelope: a new one that starts a saga, or one caused by ``cause``, or
    ``envelope`` itself (a message already sent, delivered again).

    ``key`` replaces the message's own (to put a record on another key's partition), ``headers``
    follow the usual ones, and where Kafka put the record (topic, partition, offset) is appended
    to ``acks``, for a test that follows the consumer's offsets."""
    if envelope is None:
        envelope = message.caused_by(cause) if cause else message.envelope(correlation_id=uuid4())
    where = await producer.send_and_wait(
        message.TOPIC.name,
        encode(envelope),
        key=message.key() if key is None else key,
        headers=[*kafka_headers(envelope.type, envelope.correlation_id), *headers],
    )
    if acks is not None:
        acks.append(where)
    return envelope


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


async def in_inbox(runtime: ServiceRuntime, inbox: type[InboxMixin], envelope: Envelope) -> None:
    """Wait until the service applied (or deliberately ignored) this message: its inbox has it."""

    async def recorded() -> bool:
        async with runtime.sessionmaker() as session:
            return await session.get(inbox, envelope.id) is not None

    await eventually(recorded)


async def committed_offset(
    access: KafkaAccess, group: str, partition: TopicPartition
) -> int | None:
    """The offset ``group`` last committed on ``partition`` in the broker (None: never)."""
    admin = AIOKafkaAdminClient(**access.client_options())
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group, partitions=[partition])
    finally:
        await admin.close()
    found = committed.get(partition)
    return None if found is None or found.offset < 0 else found.offset


async def apply_as_one_batch(
    runtime: ServiceRuntime,
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
