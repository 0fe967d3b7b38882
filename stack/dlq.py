"""Dead letters a person can handle: ``python -m stack dlq list`` shows what each service's
dead-letter topic holds and why; ``python -m stack dlq redrive SERVICE OFFSET...`` publishes
chosen messages again to the topic they came from, once their cause is mended.

Re-driving is safe to repeat: the message keeps its id, so every consumer that already applied
it absorbs it in its inbox; one that fails again dead-letters it again, at a new offset. That
holds while the inboxes keep its id (``INBOX_KEEP_HOURS`` from when it was delivered): a letter
whose message was written longer ago than that is refused unless forced. Only the record a
letter names is published again, as it is on its topic: a letter is no more than a pointer to it.
"""

import asyncio
import importlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from common.kafka_access import KafkaAccess
from common.settings import ServiceSettings, from_environment
from schemas.topics import CONSUMED_TOPICS, CONSUMING_SERVICES, dead_letter_topic


def inbox_keep(service: str) -> timedelta:
    """How long the inboxes keep an id: ``INBOX_KEEP_HOURS`` as the service reads it (from the
    environment or ``.env``; the services of one stack share it)."""
    settings_class = importlib.import_module(f"{service}.settings").Settings
    settings: ServiceSettings = from_environment(settings_class)  # refused by name, no values
    return timedelta(hours=settings.inbox_keep_hours)


@dataclass(frozen=True)
class DeadLetter:
    service: str
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    """Its headers as text, to read (one without a value is left out)."""
    written_at: datetime
    """When its message was first written to its topic, as the letter says (the dead letter's
    own time for a letter from before ``dlq.written_at`` was recorded). Shown, not trusted:
    a re-drive reads the record itself."""

    @property
    def origin(self) -> str:
        h = self.headers
        return (
            f"{h.get('dlq.topic', '?')}[{h.get('dlq.partition', '?')}]@{h.get('dlq.offset', '?')}"
        )


async def read(access: KafkaAccess, service: str) -> list[DeadLetter]:
    """Every record on the service's dead-letter topic, oldest first."""
    topic = dead_letter_topic(service)
    consumer = AIOKafkaConsumer(**access.client_options(), enable_auto_commit=False, group_id=None)
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        if topic.name not in await consumer.topics():
            return letters
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                letters.extend(_letter(service, record) for record in records)
    finally:
        await consumer.stop()
    return letters


def _letter(service: str, record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    headers = {
        name: value.decode(errors="replace") for name, value in record.headers if value is not None
    }
    written_ms = int(headers.get("dlq.written_at") or record.timestamp)
    return DeadLetter(
        service=service,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=headers,
        written_at=datetime.fromtimestamp(written_ms / 1000, UTC),
    )


class Redriven(NamedTuple):
    sent: int
    too_old: list[int]
    """Offsets refused: the record they name is older than the inboxes keep ids (see
    ``force``)."""
    unmatched: list[int] = []
    """Offsets refused: the letter is not the record it names (a topic the service does not
    consume, or another key or value there), or that record is gone. Anyone who may write a
    service's dead-letter topic could otherwise have the admin publish anything anywhere."""


async def redrive(
    access: KafkaAccess, service: str, offsets: set[int] | None, *, force: bool = False
) -> Redriven:
    """Publish again the records the chosen dead letters name (all with ``None``), as they are
    on their topic, headers included. A record written more than :func:`inbox_keep` ago is
    refused unless ``force``: a consumer that applied it may have forgotten its id, and would
    apply it again. What decides is the record's own time, never a letter's headers: whoever
    may write a dead-letter topic could make an old record look new."""
    oldest_ms = (datetime.now(UTC) - inbox_keep(service)).timestamp() * 1000
    chosen: list[tuple[DeadLetter, ConsumerRecord[bytes, bytes]]] = []
    too_old, unmatched = [], []
    for letter in await read(access, service):
        if offsets is not None and letter.offset not in offsets:
            continue
        original = await _original(access, letter)
        if original is None:
            unmatched.append(letter.offset)
        elif original.timestamp < oldest_ms and not force:
            too_old.append(letter.offset)
        else:
            chosen.append((letter, original))
    producer = AIOKafkaProducer(**access.client_options(), enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for letter, original in chosen:
            kept = [(name, v) for name, v in original.headers if not name.startswith("dlq.")]
            headers = [*kept, ("dlq.redriven_from", _redriven_from(letter))]
            await producer.send_and_wait(
                original.topic, original.value, key=original.key, headers=headers
            )
    finally:
        await producer.stop()
    return Redriven(len(chosen), too_old, unmatched)


def _redriven_from(letter: DeadLetter) -> bytes:
    return f"{dead_letter_topic(letter.service).name}@{letter.offset}".encode()


async def _original(access: KafkaAccess, letter: DeadLetter) -> ConsumerRecord[bytes, bytes] | None:
    """The record the letter's headers name, on a topic its service consumes, if the letter
    holds its key and value; otherwise ``None``: only that record is ever published again."""
    consumed = {topic.name for topic in CONSUMED_TOPICS.get(letter.service, ())}
    origin = letter.headers.get("dlq.topic", "")
    try:
        partition = int(letter.headers["dlq.partition"])
        offset = int(letter.headers["dlq.offset"])
    except (KeyError, ValueError):
        return None
    if origin not in consumed:
        return None
    consumer = AIOKafkaConsumer(**access.client_options(), enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        where = TopicPartition(origin, partition)
        consumer.assign([where])
        consumer.seek(where, offset)
        batch = await consumer.getmany(where, timeout_ms=5000, max_records=1)
    except KafkaError:
        return None
    finally:
        await consumer.stop()
    found = batch.get(where, [])
    if not found or found[0].offset != offset:
        return None
    record = found[0]
    return record if (record.key, record.value) == (letter.key, letter.value) else None


def show(access: KafkaAccess, services: list[str]) -> int:
    total = 0
    for service in services:
        letters = asyncio.run(read(access, service))
        total += len(letters)
        print(f"{dead_letter_topic(service).name}: {len(letters)} message(s)")
        for letter in letters:
            kind = letter.headers.get("type", "?")
            reason = letter.headers.get("dlq.reason", "").replace("\n", " ")[:140]
            print(f"  offset {letter.offset:<6} {kind:<22} from {letter.origin:<28} {reason}")
    return total


ALL_SERVICES = list(CONSUMING_SERVICES)
