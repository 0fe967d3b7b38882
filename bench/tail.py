"""Each order's outcome, read off ``orders.events`` as it happens: the bench never polls the
gateway for it, so measuring adds no load to what is measured. Along the way, the time at which
each message of a paid order's path was produced, to tell which service's hop the time goes to."""

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from bench.stats import Latency
from common.kafka_access import KafkaAccess
from schemas.topics import INVENTORY_EVENTS, ORDERS_COMMANDS, ORDERS_EVENTS, PAYMENTS_EVENTS

FINAL_TYPES = frozenset({"OrderPaid", "OrderCancelled", "OrderRejected"})

PATH = ("PlaceOrder", "OrderPlaced", "StockReserved", "PaymentSucceeded", "OrderPaid")
"""A paid order's messages in the order they happen, all keyed by the order's id. Between two,
one service's hop: it fetched the first, applied it, committed, and its relay produced the next."""
HOP_SERVICES = ("order_svc", "product_svc", "payment_svc", "order_svc")
HOPS = tuple(
    f"{service}: {before} -> {after}"
    for service, (before, after) in zip(HOP_SERVICES, pairwise(PATH), strict=True)
)
"""Each hop's name, as :func:`hop_latencies` keys its figures."""
FETCH_WAIT_MS = 200
"""How long the broker may hold the tail's fetch to gather records for it."""
_PATH_TOPICS = (ORDERS_COMMANDS, ORDERS_EVENTS, INVENTORY_EVENTS, PAYMENTS_EVENTS)
_PATH_TYPES = {kind.encode(): kind for kind in PATH}


@dataclass(frozen=True)
class Final:
    type: str
    event_at: float
    """Wall-clock seconds when order_svc's relay produced the event (the record's timestamp)."""
    received_at: float
    reason: str | None


def parse_final(
    record: ConsumerRecord[bytes, bytes], received_at: float
) -> tuple[str, Final] | None:
    """(order id, how it ended) if ``record`` is an order's final event."""
    try:
        envelope = orjson.loads(record.value or b"")
        kind = envelope["type"]
        if kind not in FINAL_TYPES:
            return None
        data = envelope["data"]
        order_id = str(data["order_id"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    created = record.timestamp / 1000 if record.timestamp_type == 0 else received_at
    return order_id, Final(kind, created, received_at, data.get("reason"))


class OrderTail:
    """Follows ``orders.events`` and the other topics of an order's path from their end, without
    a consumer group; remembers the first final event of every order, and when each message of
    its path was produced."""

    def __init__(self, access: KafkaAccess) -> None:
        self.finals: dict[str, Final] = {}
        self.path_stamps: dict[str, dict[str, float]] = {}
        """Order id -> message type -> when it was produced (the record's timestamp, s)."""
        # Every figure comes from the records' own timestamps, not from when the tail reads
        # them: the broker may hold its fetches (a fetch a fifth of a second, not one for each
        # record produced on one of its four topics), which spares the broker and the bench's
        # own client the work on the cores that the shop shares with them.
        self._consumer = AIOKafkaConsumer(
            **access.client_options(),
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=FETCH_WAIT_MS,
            fetch_min_bytes=1 << 20,
        )
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        await self._consumer.start()
        partitions = [
            TopicPartition(topic.name, p) for topic in _PATH_TOPICS for p in range(topic.partitions)
        ]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end now, so nothing produced from here is missed
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            now = time.time()
            for records in batch.values():
                for record in records:
                    self._stamp(record)
                    if record.topic != ORDERS_EVENTS.name:
                        continue
                    parsed = parse_final(record, now)
                    if parsed is not None and parsed[0] not in self.finals:
                        self.finals[parsed[0]] = parsed[1]
            if batch:
                self._changed.set()

    def _stamp(self, record: ConsumerRecord[bytes, bytes]) -> None:
        kind = next((_PATH_TYPES.get(v) for k, v in record.headers or () if k == "type"), None)
        if kind is None or record.key is None or record.timestamp_type != 0:
            return
        self.path_stamps.setdefault(record.key.decode(), {}).setdefault(
            kind, record.timestamp / 1000
        )

    def missing(self, order_ids: Iterable[str]) -> list[str]:
        return [order_id for order_id in order_ids if order_id not in self.finals]

    async def wait_for(self, order_ids: Sequence[str], timeout_s: float) -> bool:
        """True once every one of ``order_ids`` has ended; False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        pending = self.missing(order_ids)
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
            except TimeoutError:
                pass
            pending = self.missing(pending)
        return True


def hop_latencies(
    stamps: Mapping[str, Mapping[str, float]], order_ids: Iterable[str]
) -> dict[str, Latency]:
    """For the orders that went the whole path, each hop's time: ``"product_svc: OrderPlaced ->
    StockReserved"`` -> its latency, in path order."""
    hops: dict[str, list[float]] = {hop: [] for hop in HOPS}
    for order_id in order_ids:
        times = stamps.get(order_id, {})
        if all(kind in times for kind in PATH):
            for durations, (before, after) in zip(hops.values(), pairwise(PATH), strict=True):
                durations.append(max(0.0, times[after] - times[before]))
    return {hop: latency for hop, durations in hops.items() if (latency := Latency.of(durations))}
