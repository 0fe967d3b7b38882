"""Follows orders.events so that a client can wait for an order's news without polling
(``GET /orders/{id}?wait=10``, ``GET /orders/{id}/events``), and bounds how many wait at once."""

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator
from uuid import UUID

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from fastapi import HTTPException
from starlette.types import Receive

from common.kafka_access import KafkaAccess
from schemas.topics import ORDERS_EVENTS

log = logging.getLogger(__name__)


class News:
    """Set whenever an order has news; ``last`` is the type of the latest event."""

    def __init__(self) -> None:
        self._set = asyncio.Event()
        self.last: str | None = None

    def tell(self, event_type: str | None) -> None:
        self.last = event_type
        self._set.set()

    def clear(self) -> None:
        """Forget what was told: call before reading the order's state."""
        self._set.clear()

    async def wait(self, timeout_s: float) -> bool:
        """True when there is news within ``timeout_s``."""
        try:
            await asyncio.wait_for(self._set.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


class OrderWatch:
    def __init__(self, access: KafkaAccess) -> None:
        self._access = access
        self._waiters: dict[bytes, set[News]] = defaultdict(set)
        self.ready = False

    @contextlib.contextmanager
    def changes(self, order_id: UUID) -> Iterator[News]:
        """News of the order from now on; register before reading its state."""
        key = str(order_id).encode()
        news = News()
        self._waiters[key].add(news)
        try:
            yield news
        finally:
            self._waiters[key].discard(news)
            if not self._waiters[key]:
                del self._waiters[key]

    async def run(self) -> None:
        """Tail orders.events from its end, outside any consumer group (nothing is committed)."""
        while True:
            # Without a group, aiokafka assigns every partition of the topic to this consumer.
            consumer = AIOKafkaConsumer(
                ORDERS_EVENTS.name,
                **self._access.client_options(),
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
                            waiting = self._waiters.get(record.key or b"")
                            if waiting:
                                event_type = _type_of(record.headers)
                                for news in waiting:
                                    news.tell(event_type)
            except asyncio.CancelledError:
                raise
            except KafkaError:
                self.ready = False
                log.warning("order watch lost the broker; reconnecting", exc_info=True)
                await asyncio.sleep(1)
            finally:
                await consumer.stop()


def _type_of(headers: object) -> str | None:
    for name, value in headers or ():  # type: ignore[attr-defined]
        if name == "type":
            return bytes(value).decode(errors="replace")
    return None


class Watchers:
    """Clients waiting on orders at once: at most ``per_user`` for one user, ``per_address``
    for one client address (many accounts, one client), ``total`` in all. They wait outside
    the gateway's requests in flight (see :func:`gateway_svc.middleware.release_slot`), so
    these bounds are what keeps them from taking the gateway's capacity."""

    def __init__(self, total: int, per_user: int, per_address: int | None = None) -> None:
        self.total = total
        self.per_user = per_user
        self.per_address = per_address
        self.open: Counter[str] = Counter()
        self.count = 0

    def take(self, user: str, address: str) -> "Watcher":
        """A place for one more, or 503 (the gateway's bound) or 429 (the client's)."""
        refusal = self._refusal(user, address)
        if refusal is not None:
            raise refusal
        return Watcher(self, self._keys(user, address))

    def try_take(self, user: str, address: str) -> "Watcher | None":
        """A place for one more, or None."""
        if self._refusal(user, address) is not None:
            return None
        return Watcher(self, self._keys(user, address))

    def _keys(self, user: str, address: str) -> tuple[str, ...]:
        return (f"user:{user}",) if self.per_address is None else (f"user:{user}", f"ip:{address}")

    def _refusal(self, user: str, address: str) -> HTTPException | None:
        if self.count >= self.total:
            return HTTPException(
                503, "too many clients waiting on orders; try again shortly", {"Retry-After": "1"}
            )
        if self.open[f"user:{user}"] >= self.per_user or (
            self.per_address is not None and self.open[f"ip:{address}"] >= self.per_address
        ):
            return HTTPException(
                429, "too many long polls or streams of yours at once", {"Retry-After": "1"}
            )
        return None


class Watcher:
    """One place among the :class:`Watchers`, given back once (``release``, or ``with``)."""

    def __init__(self, watchers: Watchers, keys: tuple[str, ...]) -> None:
        self._watchers: Watchers | None = watchers
        self._keys = keys
        watchers.count += 1
        for key in keys:
            watchers.open[key] += 1

    def release(self) -> None:
        watchers, self._watchers = self._watchers, None
        if watchers is not None:
            watchers.count -= 1
            for key in self._keys:
                watchers.open[key] -= 1
                if watchers.open[key] <= 0:
                    del watchers.open[key]

    def __enter__(self) -> "Watcher":
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


async def left(receive: Receive) -> None:
    """Returns when the client has gone (a request whose body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def news_or_leaving(news: News, receive: Receive, timeout_s: float) -> bool:
    """Wait for the order's news, the time, or the client's leaving; False unless news."""
    gone = asyncio.ensure_future(left(receive))
    told = asyncio.ensure_future(news.wait(timeout_s))
    try:
        await asyncio.wait({gone, told}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        told.cancel()
    return told.done() and not told.cancelled() and told.result()
