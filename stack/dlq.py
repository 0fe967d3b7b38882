"""Dead letters a person can handle: ``python -m stack dlq list`` shows what each service's
dead-letter topic holds and why; ``python -m stack dlq redrive SERVICE OFFSET...`` publishes
chosen messages again to the topic they came from, once their cause is mended.

Re-driving is safe to repeat: the message keeps its id, so every consumer that already applied
it absorbs it in its inbox; one that fails again dead-letters it again, at a new offset.
"""

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.topics import CONSUMING_SERVICES, dead_letter_topic


@dataclass(frozen=True)
class DeadLetter:
    service: str
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def origin(self) -> str:
        h = self.headers
        return (
            f"{h.get('dlq.topic', '?')}[{h.get('dlq.partition', '?')}]@{h.get('dlq.offset', '?')}"
        )


async def read(bootstrap: str, service: str) -> list[DeadLetter]:
    """Every record on the service's dead-letter topic, oldest first."""
    topic = dead_letter_topic(service)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
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
                letters.extend(
                    DeadLetter(
                        service=service,
                        offset=record.offset,
                        key=record.key,
                        value=record.value,
                        headers={k: v.decode(errors="replace") for k, v in record.headers},
                    )
                    for record in records
                )
    finally:
        await consumer.stop()
    return letters


async def redrive(bootstrap: str, service: str, offsets: set[int] | None) -> int:
    """Publish the chosen dead letters (all with ``None``) to their original topics."""
    chosen = [
        letter
        for letter in await read(bootstrap, service)
        if offsets is None or letter.offset in offsets
    ]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for letter in chosen:
            origin = letter.headers.get("dlq.topic")
            if not origin:
                continue
            headers = [
                (name, value.encode())
                for name, value in letter.headers.items()
                if not name.startswith("dlq.")
            ]
            headers.append(("dlq.redriven_from", f"{service}.dlq@{letter.offset}".encode()))
            await producer.send_and_wait(origin, letter.value, key=letter.key, headers=headers)
    finally:
        await producer.stop()
    return len(chosen)


def show(bootstrap: str, services: list[str]) -> int:
    total = 0
    for service in services:
        letters = asyncio.run(read(bootstrap, service))
        total += len(letters)
        print(f"{dead_letter_topic(service).name}: {len(letters)} message(s)")
        for letter in letters:
            kind = letter.headers.get("type", "?")
            reason = letter.headers.get("dlq.reason", "").replace("\n", " ")[:140]
            print(f"  offset {letter.offset:<6} {kind:<22} from {letter.origin:<28} {reason}")
    return total


ALL_SERVICES = list(CONSUMING_SERVICES)
