"""Follows orders.events so that a client can wait for an order's outcome without polling:
``GET /orders/{id}?wait=10`` parks until the next event of that order (or the time is up)."""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator
from uuid import UUID

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from schemas.topics import ORDERS_EVENTS

log = logging.getLogger(__name__)


class OrderWatch:
    def __init__(self, bootstrap_servers: str) -> None:
        self._bootstrap = bootstrap_servers
        self._waiters: dict[bytes, set[asyncio.Event]] = defaultdict(set)
        self.ready = False

    @contextlib.contextmanager
    def changes(self, order_id: UUID) -> Iterator[asyncio.Event]:
        """An event set whenever the order has news; register before reading its state."""
        key = str(order_id).encode()
        event = asyncio.Event()
        self._waiters[key].add(event)
        try:
            yield event
        finally:
            self._waiters[key].discard(event)
            if not self._waiters[key]:
                del self._waiters[key]

    async def run(self) -> None:
        """Tail orders.events from its end, outside any consumer group (nothing is committed)."""
        while True:
            # Without a group, aiokafka assigns every partition of the topic to this consumer.
            consumer = AIOKafkaConsumer(
                ORDERS_EVENTS.name,
                bootstrap_servers=self._bootstrap,
                enable_auto_commit=False,
                group_id=None,
                auto_offset_reset="latest",
            )
            try:
                await consumer.start()
                self.ready = True
                while True:
                    batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
                    for records in batches.values():
                        for record in records:
                            for event in self._waiters.get(record.key or b"", ()):
                                event.set()
            except asyncio.CancelledError:
                raise
            except KafkaError:
                self.ready = False
                log.warning("order watch lost the broker; reconnecting", exc_info=True)
                await asyncio.sleep(1)
            finally:
                await consumer.stop()
