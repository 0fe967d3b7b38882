"""Producing: one idempotent producer per process, and publishing a message at once."""

import asyncio
import logging
from collections.abc import Mapping
from uuid import UUID

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from common import tracing
from common.kafka_access import KafkaAccess
from schemas.envelope import Envelope, Message, encode

log = logging.getLogger(__name__)


class KafkaProducerHolder:
    """One idempotent producer per process, rebuilt after a failure (aiokafka#1017)."""

    def __init__(self, access: KafkaAccess, client_id: str) -> None:
        self._access = access
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **self._access.client_options(),
                    client_id=self._client_id,
                    enable_idempotence=True,
                    acks="all",
                    linger_ms=2,
                    request_timeout_ms=15_000,
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def reset(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception:  # a broken producer may fail to stop; it is dropped either way
                log.warning("producer did not stop cleanly", exc_info=True)

    async def close(self) -> None:
        await self.reset()


def kafka_headers(
    message_type: str, correlation: UUID, extra: Mapping[str, str] | None = None
) -> list[tuple[str, bytes]]:
    """Headers that repeat the envelope's type and correlation id, for tools that read headers,
    then ``extra`` (a trace's ``traceparent``)."""
    headers = [("type", message_type.encode()), ("correlation_id", str(correlation).encode())]
    return headers + [(name, value.encode()) for name, value in (extra or {}).items()]


async def publish(
    producer: KafkaProducerHolder, message: Message, envelope: Envelope | None = None
) -> Envelope:
    """Publish ``message`` (in ``envelope``, else a new one) now and wait for Kafka's
    acknowledgement.

    For a process without a database (the gateway): the caller answers its client only once the
    command is durable. Services with a database stage messages in their outbox instead.
    """
    envelope = envelope or message.envelope()
    kafka = await producer.get()
    try:
        await kafka.send_and_wait(
            message.TOPIC.name,
            encode(envelope),
            key=message.key(),
            headers=kafka_headers(envelope.type, envelope.correlation_id, _trace()),
        )
    except KafkaError:
        await producer.reset()
        raise
    return envelope


def _trace() -> dict[str, str] | None:
    traceparent = tracing.current_traceparent()
    return None if traceparent is None else {tracing.TRACEPARENT: traceparent}
