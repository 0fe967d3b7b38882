"""Batch windows, lazy offset commits and rewinds, with a stand-in Kafka consumer."""

import asyncio
import time
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from faststream.kafka.message import KafkaAckableMessage
from sqlalchemy.exc import OperationalError

from common.broker import create_broker, subscribe
from common.consumer import BatchConsumer
from common.pacing import BatchWindow, OffsetCommitter
from common.settings import ServiceSettings
from schemas.envelope import Envelope, encode
from schemas.topics import USERS_COMMANDS, USERS_EVENTS
from schemas.users import UserRegistered
from tests.conftest import consumer_record


class FakeKafka:
    """The few AIOKafkaConsumer calls the consumer plumbing makes."""

    def __init__(self, owned: set[TopicPartition], arriving: list[list[Any]] | None = None) -> None:
        self.owned = owned
        self.arriving = arriving or []
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.fetches = 0
        self.fail_commits = False

    def assignment(self) -> set[TopicPartition]:
        return self.owned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail_commits:
            raise CommitFailedError("the group rebalanced")
        self.commits.append(dict(offsets))

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.fetches += 1
        if not self.arriving:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        records = self.arriving.pop(0)[:max_records]
        return {TopicPartition(records[0].topic, records[0].partition): records}

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))


def record(partition: int, offset: int, value: bytes = b"{}") -> ConsumerRecord[bytes, bytes]:
    return consumer_record("orders.events", value, partition=partition, offset=offset)


P0, P1 = TopicPartition("orders.events", 0), TopicPartition("orders.events", 1)


async def test_applied_offsets_are_committed_past_the_last_record_of_each_partition() -> None:
    kafka = FakeKafka({P0, P1})
    offsets = OffsetCommitter(interval_ms=0)
    await offsets.applied(kafka, [record(0, 4), record(1, 9), record(0, 5)])  # type: ignore[arg-type]
    assert kafka.commits == [{P0: 6, P1: 10}]


async def test_batches_within_an_interval_share_one_commit_made_when_it_ends() -> None:
    kafka = FakeKafka({P0})
    offsets = OffsetCommitter(interval_ms=50)
    await offsets.applied(kafka, [record(0, 1)])  # type: ignore[arg-type]
    await offsets.applied(kafka, [record(0, 2)])  # type: ignore[arg-type]
    await offsets.applied(kafka, [record(0, 3)])  # type: ignore[arg-type]
    assert kafka.commits == [{P0: 2}]
    await asyncio.sleep(0.1)
    assert kafka.commits == [{P0: 2}, {P0: 4}]


async def test_offsets_of_partitions_no_longer_owned_are_dropped_not_committed() -> None:
    kafka = FakeKafka({P1})
    offsets = OffsetCommitter(interval_ms=0)
    await offsets.applied(kafka, [record(0, 4), record(1, 2)])  # type: ignore[arg-type]
    assert kafka.commits == [{P1: 3}]


async def test_a_failed_commit_is_dropped_and_the_next_one_goes_through() -> None:
    kafka = FakeKafka({P0})
    offsets = OffsetCommitter(interval_ms=0)
    kafka.fail_commits = True
    await offsets.applied(kafka, [record(0, 4)])  # type: ignore[arg-type]
    kafka.fail_commits = False
    await offsets.applied(kafka, [record(0, 5)])  # type: ignore[arg-type]
    assert kafka.commits == [{P0: 6}]


async def test_close_commits_what_is_pending() -> None:
    kafka = FakeKafka({P0})
    offsets = OffsetCommitter(interval_ms=60_000)
    await offsets.applied(kafka, [record(0, 1)])  # type: ignore[arg-type]
    await offsets.applied(kafka, [record(0, 2)])  # type: ignore[arg-type]
    await offsets.close()
    assert kafka.commits == [{P0: 2}, {P0: 3}]


async def test_a_batch_after_a_quiet_spell_is_applied_as_it_came() -> None:
    kafka = FakeKafka({P0}, arriving=[[record(0, 2)]])
    window = BatchWindow(window_ms=50, max_records=100)
    batch = (record(0, 1),)
    assert await window.extend(kafka, batch) == batch  # type: ignore[arg-type]
    assert kafka.fetches == 0


async def test_a_batch_right_after_another_of_a_busy_consumer_takes_in_the_records_behind_it() -> (
    None
):
    kafka = FakeKafka({P0, P1}, arriving=[[record(0, 2)], [record(1, 7), record(1, 8)]])
    window = BatchWindow(window_ms=50, max_records=100, horizon_s=0.1)
    assert await window.extend(kafka, (record(0, 0),)) == (record(0, 0),)  # type: ignore[arg-type]
    await asyncio.sleep(0.07)  # applying it: busy 70% of the last 100 ms
    window.ended()
    assert window.busy(time.monotonic()) >= 0.6
    extended = await window.extend(kafka, (record(0, 1),))  # type: ignore[arg-type]
    assert [(r.partition, r.offset) for r in extended] == [(0, 1), (0, 2), (1, 7), (1, 8)]


async def test_a_batch_right_after_another_of_a_consumer_with_time_to_spare_comes_as_it_is() -> (
    None
):
    # a saga's next event often follows the one before by a few milliseconds: no load
    kafka = FakeKafka({P0}, arriving=[[record(0, 2)]])
    window = BatchWindow(window_ms=50, max_records=100, horizon_s=0.1)
    await window.extend(kafka, (record(0, 0),))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)  # applying it: busy 10% of the last 100 ms
    window.ended()
    batch = (record(0, 1),)
    assert await window.extend(kafka, batch) == batch  # type: ignore[arg-type]
    assert kafka.fetches == 0


async def test_busy_counts_only_the_last_horizon() -> None:
    window = BatchWindow(window_ms=50, max_records=100, horizon_s=0.05)
    await window.extend(FakeKafka({P0}), (record(0, 0),))  # type: ignore[arg-type]
    await asyncio.sleep(0.03)
    window.ended()
    assert 0.5 <= window.busy(time.monotonic()) <= 1.0
    await asyncio.sleep(0.06)
    assert window.busy(time.monotonic()) == 0


async def test_a_window_stops_at_the_batch_size() -> None:
    kafka = FakeKafka({P0}, arriving=[[record(0, n) for n in range(2, 10)]])
    window = BatchWindow(window_ms=50, max_records=3, busy_share=0)
    window.ended()
    extended = await window.extend(kafka, (record(0, 1),))  # type: ignore[arg-type]
    assert [r.offset for r in extended] == [1, 2, 3]


class Settings(ServiceSettings):
    service_name = "test_svc"
    default_http_port = 0


def registered(name: str) -> bytes:
    event = UserRegistered(user_id=uuid4(), name=name, email="ann@example.com", role="Customer")
    return encode(event.envelope())


async def test_a_failed_batch_comes_again_with_the_records_its_window_added() -> None:
    async def apply(envelope: Envelope, event: UserRegistered) -> None:
        if event.name == "Down":
            raise OperationalError("INSERT", {}, Exception("the database went away"))

    settings = Settings(
        consumer_batch_window_ms=50, consumer_batch_window_busy=0, retry_backoff_s=0
    )
    consumer = BatchConsumer(settings, {UserRegistered: apply}, producer=None)  # type: ignore[arg-type]
    on_batch = subscribe(create_broker(settings), settings, [USERS_EVENTS], consumer)
    kafka = FakeKafka({P0, P1}, arriving=[[record(1, 7, registered("Cy"))]])

    def message(*records: ConsumerRecord[bytes, bytes]) -> KafkaAckableMessage:
        return KafkaAckableMessage(raw_message=records, body=b"", consumer=kafka)

    await on_batch(message(record(0, 1, registered("Ann"))))
    failing = message(record(0, 2, registered("Down")))
    with pytest.raises(OperationalError):
        await on_batch(failing)  # right after the first: its window took P1's record in
    await failing.nack()  # what FastStream does with a batch whose handler raised

    assert sorted(kafka.seeks) == [(P0, 2), (P1, 7)]
    assert consumer.stats.extended == 1
    assert kafka.commits == [{P0: 2}]  # the first batch only


async def test_a_batch_is_applied_topic_by_topic_each_partition_in_order() -> None:
    applied: list[str] = []

    async def apply(envelope: Envelope, event: UserRegistered) -> None:
        applied.append(event.name)

    settings = Settings(consumer_batch_window_ms=0)
    consumer = BatchConsumer(settings, {UserRegistered: apply}, producer=None)  # type: ignore[arg-type]
    on_batch = subscribe(
        create_broker(settings), settings, [USERS_EVENTS, USERS_COMMANDS], consumer
    )

    def on(topic: str, partition: int, offset: int, name: str) -> ConsumerRecord[bytes, bytes]:
        return consumer_record(topic, registered(name), partition=partition, offset=offset)

    interleaved = (
        on("users.commands", 0, 1, "Bo"),
        on("users.events", 0, 1, "Ann"),
        on("users.commands", 0, 2, "Ed"),
        on("users.events", 1, 5, "Cy"),
        on("users.events", 0, 2, "Di"),
    )
    kafka = FakeKafka(set())
    await on_batch(KafkaAckableMessage(raw_message=interleaved, body=b"", consumer=kafka))

    assert applied == ["Ann", "Cy", "Di", "Bo", "Ed"]
