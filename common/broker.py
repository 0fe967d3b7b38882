"""The service's Kafka broker and its subscription: one :class:`~common.consumer.BatchConsumer`
per service, on every topic it reads, in the service's consumer group, with offsets committed by
the consumer once the database has committed (FastStream's own ack would commit them before)."""

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import cast

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka import Topic as KafkaTopic
from faststream.kafka.message import KafkaMessage
from faststream.message import AckStatus

from common.consumer import BatchConsumer
from common.pacing import BatchWindow
from common.settings import ServiceSettings
from schemas.topics import Topic

METADATA_MAX_AGE_MS = 10_000
"""How old the cluster's metadata (who leads each partition) may get before a client asks again.
A consumer that takes a partition with no committed offset asks its leader where to start; when
that leader has moved, aiokafka (0.14) retries the old one without refreshing its metadata, and
the whole consumer waits until the metadata expires: five minutes by default, seen in the
failover cases when leaders moved back to a restarted node during a rebalance."""


def create_broker(settings: ServiceSettings) -> KafkaBroker:
    access = settings.kafka_access()
    return KafkaBroker(
        access.servers,
        security=access.faststream_security(),
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
        client_id=settings.service_name,
        logger=logging.getLogger(f"{settings.service_name}.broker"),
        log_level=logging.DEBUG,
        # No dependency injection: the handler takes the message itself (see _message). With
        # it, FastStream resolved the message from its context in a worker thread, per batch.
        apply_types=False,
    )


def subscribe(
    broker: KafkaBroker,
    settings: ServiceSettings,
    topics: Sequence[Topic],
    consumer: BatchConsumer,
) -> Callable[[KafkaMessage], Awaitable[None]]:
    """Register ``consumer`` on ``topics`` in the service's consumer group; returns the batch
    handler FastStream calls (a test can call it with a message of its own)."""
    window = BatchWindow(
        settings.consumer_batch_window_ms,
        settings.consumer_max_records,
        busy_share=settings.consumer_batch_window_busy,
    )
    offsets = consumer.offsets
    topic_rank = {topic.name: rank for rank, topic in enumerate(topics)}
    fetch_min_bytes, fetch_max_wait_ms = _fetch_wait(settings.consumer_fetch_wait_ms)

    def by_topic(record: ConsumerRecord[bytes, bytes]) -> int:
        return topic_rank.get(record.topic, len(topic_rank))

    @broker.subscriber(
        # provisioned by the launcher (python -m stack topics) with their partitions and
        # replicas; a consumer never creates one (FastStream would: one partition, one replica)
        *(KafkaTopic(topic.name, declare=False) for topic in topics),
        group_id=settings.consumer_group,
        group_instance_id=settings.consumer_instance_id,
        batch=True,
        max_records=settings.consumer_max_records,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        session_timeout_ms=settings.consumer_session_timeout_ms,
        fetch_min_bytes=fetch_min_bytes,
        fetch_max_wait_ms=fetch_max_wait_ms,
        heartbeat_interval_ms=settings.consumer_session_timeout_ms // 10,
        parser=_parsed,
        decoder=_message,
    )
    async def on_batch(message: KafkaMessage) -> None:
        records = message.raw_message
        batch = records if isinstance(records, tuple) else (records,)
        kafka = cast(AIOKafkaConsumer, message.consumer)
        extended = await window.extend(kafka, batch)
        consumer.stats.extended += len(extended) > len(batch)
        # Topic by topic, in the order the service lists them; a partition's records keep
        # their order (the sort is stable), and records of different partitions never had one.
        # The partitions come interleaved, so this makes the runs of one type longer: fewer
        # use case calls, each a few statements.
        batch = tuple(sorted(extended, key=by_topic))
        # On a failure FastStream rewinds every partition of the message's records to its
        # earliest one: the records the window added must come again too.
        message.raw_message = batch
        try:
            await consumer.apply_batch(batch)
        finally:
            window.ended()
        # Applied and committed to the database: the offsets may go. They go from here, not
        # from FastStream's ack, which would commit the consumer's positions at once.
        message.committed = AckStatus.ACKED
        await offsets.applied(kafka, batch)

    return on_batch


def leave_groups_when_stopped(broker: KafkaBroker) -> None:
    """Have the broker's consumers leave their groups as they stop, as a dynamic member does.

    A static member (``group_instance_id``) does not leave when it stops (KIP-345; aiokafka
    sends no LeaveGroup for one): its partitions would wait for its session to expire before
    another replica got them, and the group could not be reset (``python -m stack rewind``).
    A crash still leaves them waiting for the same id to come back, at once, or for the
    session's expiry."""
    for subscriber in broker.subscribers:
        coordinator = getattr(getattr(subscriber, "consumer", None), "_coordinator", None)
        if coordinator is not None:
            coordinator._group_instance_id = None  # aiokafka leaves as a dynamic member


def _fetch_wait(wait_ms: int) -> tuple[int, int]:
    """``fetch_min_bytes`` and ``fetch_max_wait_ms`` for a fetch the broker answers once
    ``wait_ms`` have passed (or a megabyte is there), or, for 0, as soon as one record is there
    (aiokafka's default)."""
    if wait_ms == 0:
        return 1, 500
    return 1 << 20, wait_ms


async def _parsed(
    records: tuple[ConsumerRecord[bytes, bytes], ...],
    parse: Callable[[tuple[ConsumerRecord[bytes, bytes], ...]], Awaitable[KafkaMessage]],
) -> KafkaMessage:
    """FastStream's parsing of a batch, which decodes every header value as UTF-8 text. A
    header without a value, or with bytes that are no text (Kafka allows both), would fail the
    batch before the consumer sees it, at every delivery: such a batch is parsed from copies
    whose header values are made text, and the consumer gets the records as they came."""
    try:
        return await parse(records)
    except (AttributeError, UnicodeDecodeError):
        message = await parse(tuple(_with_text_headers(record) for record in records))
        message.raw_message = records
        return message


def _with_text_headers(record: ConsumerRecord[bytes, bytes]) -> ConsumerRecord[bytes, bytes]:
    headers = [
        (name, (value or b"").decode(errors="replace").encode()) for name, value in record.headers
    ]
    return replace(record, headers=headers)


async def _message(message: KafkaMessage) -> KafkaMessage:
    """Hand the handler the message itself, records undecoded: :class:`BatchConsumer` validates
    them and dead-letters failures."""
    return message
