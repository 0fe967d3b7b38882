"""Pacing a consumer: how long a batch waits for the records behind it (:class:`BatchWindow`),
and how often its offsets are committed (:class:`OffsetCommitter`). Both trade a little latency
for fewer fixed costs per record, and only under load, when a batch's fixed costs dominate."""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

log = logging.getLogger(__name__)


class BatchWindow:
    """Adaptive batching: a batch that arrives while the consumer is busy waits up to
    ``window_ms`` for the records right behind it and is applied with them.

    A batch costs about the same whatever its size, and Kafka answers a fetch as soon as one
    record is there, so under load batches stay small and their fixed costs dominate. A batch is
    extended for one window only when the consumer is busy: the previous batch ended less than a
    window ago, and applying batches took at least ``busy_share`` of the last ``horizon_s``.
    Otherwise it is applied at once, because a saga's next event often follows the one before
    within milliseconds and waiting for records that are not coming would add to an order's
    latency (bench/HISTORY.md).
    """

    def __init__(
        self,
        window_ms: int,
        max_records: int,
        *,
        busy_share: float = 0.5,
        horizon_s: float = 1.0,
    ) -> None:
        self._window_s = window_ms / 1000
        self._max_records = max_records
        self._busy_share = busy_share
        self._horizon_s = horizon_s
        self._last_end = float("-inf")
        self._applying_since: float | None = None
        self._applied: deque[tuple[float, float]] = deque()
        """(start, end) of the batches applied lately."""

    async def extend(
        self, kafka: AIOKafkaConsumer, batch: tuple[ConsumerRecord[bytes, bytes], ...]
    ) -> tuple[ConsumerRecord[bytes, bytes], ...]:
        try:
            return await self._extend(kafka, batch)
        finally:
            self._applying_since = time.monotonic()

    async def _extend(
        self, kafka: AIOKafkaConsumer, batch: tuple[ConsumerRecord[bytes, bytes], ...]
    ) -> tuple[ConsumerRecord[bytes, bytes], ...]:
        now = time.monotonic()
        if (
            self._window_s <= 0
            or now - self._last_end > self._window_s
            or self.busy(now) < self._busy_share
        ):
            return batch
        records = list(batch)
        deadline = now + self._window_s
        try:
            while len(records) < self._max_records:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                more = await kafka.getmany(
                    timeout_ms=int(remaining * 1000) or 1,
                    max_records=self._max_records - len(records),
                )
                if not more:
                    break
                for partition_records in more.values():
                    records.extend(partition_records)
        except KafkaError:
            log.warning("could not extend a batch; applying what it has", exc_info=True)
        return tuple(records)

    def ended(self) -> None:
        self._last_end = time.monotonic()
        if self._applying_since is not None:
            self._applied.append((self._applying_since, self._last_end))
            self._applying_since = None

    def busy(self, now: float) -> float:
        """The share of the last ``horizon_s`` spent applying batches."""
        since = now - self._horizon_s
        while self._applied and self._applied[0][1] <= since:
            self._applied.popleft()
        spent = sum(end - max(start, since) for start, end in self._applied)
        return spent / self._horizon_s


class OffsetCommitter:
    """Commits a consumer's offsets after the database commit, at most every ``interval_ms``.

    An offset commit is a broker round trip, and Kafka writes it to its offsets topic: once per
    batch it was a large part of what a small batch costs, both here and in the broker. Offsets
    are recorded here only for batches whose transaction has committed, so a commit never goes
    past an unapplied record. Committing later only means that a crash or a rebalance delivers
    the last interval's records again, which the inboxes absorb.
    """

    def __init__(self, interval_ms: int) -> None:
        self._interval_s = interval_ms / 1000
        self._pending: dict[TopicPartition, int] = {}
        self._kafka: AIOKafkaConsumer | None = None
        self._last = float("-inf")
        self._lock = asyncio.Lock()
        self._later: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.commits = 0

    async def applied(
        self, kafka: AIOKafkaConsumer, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> None:
        """Record that ``records`` are applied and committed to the database; commit now if
        the last commit is an interval old, else soon."""
        self._kafka = kafka
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            self._pending[partition] = max(record.offset + 1, self._pending.get(partition, 0))
        wait = self._last + self._interval_s - time.monotonic()
        if wait <= 0:
            await self.commit()
        elif self._later is None:
            self._later = asyncio.get_running_loop().call_later(wait, self._commit_later)

    def _commit_later(self) -> None:
        self._later = None
        task = asyncio.create_task(self.commit())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def commit(self) -> None:
        """Commit what is pending (for the partitions this consumer still owns)."""
        async with self._lock:
            kafka, offsets, self._pending = self._kafka, self._pending, {}
            self._last = time.monotonic()
            if kafka is None or not offsets:
                return
            owned = kafka.assignment()
            offsets = {
                partition: offset for partition, offset in offsets.items() if partition in owned
            }
            if not offsets:
                return
            try:
                await kafka.commit(offsets)
            except (KafkaError, IllegalStateError) as exc:
                # A rebalance took the partitions, or the broker is away: the next owner, or
                # this consumer later, reads from the last committed offsets and the inbox
                # absorbs what comes again.
                log.warning("offsets not committed (%s: %s)", type(exc).__name__, exc)
                return
            self.commits += 1

    async def close(self) -> None:
        if self._later is not None:
            self._later.cancel()
            self._later = None
        await self.commit()
