"""What a service runs besides HTTP: its database, migrations, consumers and outbox relay.

Built once in the service's ``create_app(settings)`` and started by the app's lifespan; nothing
connects at import time.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from sqlalchemy import MetaData, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from common import collector, tracing
from common.broker import (
    BatchConsumer,
    Handlers,
    create_broker,
    leave_groups_when_stopped,
    subscribe,
)
from common.db import (
    ReadPool,
    SessionMaker,
    create_engine,
    create_sessionmaker,
    ensure_database,
    migrate,
    table_of,
)
from common.inbox import InboxMixin, forget_old
from common.lag import LagReader
from common.metrics import Figures, ServiceMetrics
from common.outbox import OutboxMixin, OutboxRelay
from common.producer import KafkaProducerHolder
from common.settings import ServiceSettings
from schemas.topics import REDELIVERY_HOURS, Topic

log = logging.getLogger(__name__)


class Runtime:
    """A service's engine, sessions, producer, relay and consumers, with one start and stop."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        metadata: MetaData | None = None,
        migrations: Path | None = None,
        outbox: type[OutboxMixin] | None = None,
        inbox: type[InboxMixin] | None = None,
    ) -> None:
        self.settings = settings
        self._metadata = metadata
        self._migrations = migrations
        self._inbox = inbox
        self._outbox = outbox
        self.producer = KafkaProducerHolder(settings.kafka_access(), settings.service_name)
        self.broker: KafkaBroker = create_broker(settings)
        self.engine: AsyncEngine | None = None
        self.sessionmaker: SessionMaker | None = None
        self.reads: SessionMaker | None = None
        """Autocommit sessions (same pool): read-only HTTP routes, and a write that must commit
        before the use case's own transaction does (payment_svc's charge attempts)."""
        self.read_pool: ReadPool | None = None
        """psycopg connections of their own for the hottest reads (see :class:`ReadPool`)."""
        self.relay: OutboxRelay | None = None
        self.consumers: list[BatchConsumer] = []
        self.metrics = ServiceMetrics(settings.service_name)
        self.metrics.add(
            Figures(
                settings.service_name,
                lambda: {**self.counters(), **collector.counters()},
                collector.gauges,
            )
        )
        if metadata is not None:
            self.engine = create_engine(settings.service_database_url())
            self.sessionmaker = create_sessionmaker(self.engine)
            self.reads = create_sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT")
            )
            self.read_pool = ReadPool(
                settings.service_database_url(),
                size=settings.read_pool_size,
                name=f"{settings.service_name}-reads",
            )
            if outbox is not None:
                self.relay = OutboxRelay(
                    settings.service_database_url(),
                    outbox,
                    self.producer,
                    batch_size=settings.relay_batch_size,
                    idle_poll_s=settings.relay_idle_poll_s,
                    metrics=self.metrics,
                )
        self._tasks: list[asyncio.Task[None]] = []
        self._startup: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        self._background: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        self._on_stop: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.ready = False
        if inbox is not None and self.sessionmaker is not None:
            if settings.inbox_keep_hours < REDELIVERY_HOURS:
                log.warning(
                    "INBOX_KEEP_HOURS is %g: Kafka may deliver a message again up to %d hours"
                    " after it was written, and one whose id is forgotten by then is applied twice",
                    settings.inbox_keep_hours,
                    REDELIVERY_HOURS,
                )
            self.every("inbox-forget", settings.inbox_forget_interval_s, self._forget_old_ids)
        self._consumed: list[Topic] = []
        self._lag = LagReader(settings.kafka_access())
        self.on_stop(self._lag.close)
        self.every("metrics-gauges", settings.metrics_sample_interval_s, self._sample_gauges)

    def consume(self, topics: Sequence[Topic], handlers: Handlers) -> BatchConsumer | None:
        """Join the service's consumer group on ``topics`` and apply ``handlers``.

        With no handlers yet the group is not joined: joining would commit offsets past
        messages that a later version of the service must still see.
        """
        if not handlers:
            log.info("%s handles no messages yet; not consuming", self.settings.service_name)
            return None
        consumer = BatchConsumer(
            self.settings,
            handlers,
            self.producer,
            self.sessionmaker,
            self._inbox,
            self._outbox,
            metrics=self.metrics,
        )
        subscribe(self.broker, self.settings, topics, consumer)
        self.consumers.append(consumer)
        self._consumed.extend(topics)
        return consumer

    def on_start(self, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Do ``work()`` when the service starts, after migrations and before it consumes or
        reports ready (e.g. the first admin account). If it fails, the service does not start:
        its process exits, and the launcher reports the failure."""
        self._startup.append((name, work))

    def run_in_background(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``loop()`` (a service's own background loop, e.g. a sender) while the service
        runs; it starts after migrations and is cancelled on stop, before the connections close."""
        self._background.append((name, loop))

    def every(
        self, name: str, interval_s: float, step: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        """Run ``step()`` now and then every ``interval_s`` while the service runs (see
        :meth:`run_in_background`). A step that fails is logged and the next round tries again:
        the database, or a system outside, may be away for a while."""

        async def loop() -> None:
            while True:
                try:
                    await step()
                except Exception:
                    log.warning("%s failed; again in %g s", name, interval_s, exc_info=True)
                await asyncio.sleep(interval_s)

        self.run_in_background(name, loop)

    async def _forget_old_ids(self) -> None:
        assert self.sessionmaker is not None and self._inbox is not None
        keep = timedelta(hours=self.settings.inbox_keep_hours)
        forgotten = await forget_old(self.sessionmaker, self._inbox, keep)
        if forgotten:
            log.info(
                "forgot %d inbox ids older than %g hours",
                forgotten,
                self.settings.inbox_keep_hours,
            )

    async def _sample_gauges(self) -> None:
        """The gauges of ``/metrics`` that cost a query (lag, outbox, inbox), each on its own
        within a time limit: the broker away leaves the database's gauges sampled, and the
        reverse. A gauge that could not be read keeps its last value; the log says why."""
        if self._consumed:
            try:
                async with asyncio.timeout(_SAMPLE_TIMEOUT_S):
                    behind = await self._lag.per_partition(
                        self.settings.consumer_group, self._consumed
                    )
                self.metrics.lag({(tp.topic, tp.partition): n for tp, n in behind.items()})
            except Exception as exc:
                log.warning("consumer lag not sampled: %s: %s", type(exc).__name__, exc)
                await self._lag.close()  # opened again, afresh, next time
        if self.reads is None:
            return
        try:
            async with asyncio.timeout(_SAMPLE_TIMEOUT_S), self.reads() as session:
                await self._sample_tables(session)
        except Exception as exc:
            log.warning("outbox and inbox not sampled: %s: %s", type(exc).__name__, exc)

    async def _sample_tables(self, session: AsyncSession) -> None:
        if self._outbox is not None:
            outbox = table_of(self._outbox)
            age = func.extract("epoch", func.now() - func.min(outbox.c.created_at))
            rows, oldest = (
                await session.execute(
                    select(func.count(), func.coalesce(age, 0)).select_from(outbox)
                )
            ).one()
            self.metrics.outbox_rows.set(rows)
            self.metrics.outbox_oldest_seconds.set(float(oldest))
        if self._inbox is not None:
            estimate = await session.scalar(
                text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:table)"),
                {"table": self._inbox.__tablename__},
            )
            if estimate is None or estimate < 0:  # never analysed yet, so small: counted
                estimate = await session.scalar(select(func.count()).select_from(self._inbox))
            self.metrics.inbox_rows.set(float(estimate or 0))

    def on_stop(self, close: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Call ``close()`` when the service stops, after its loops ended."""
        self._on_stop.append(close)

    async def start(self) -> None:
        if self.engine is not None and self._metadata is not None:
            await ensure_database(self.settings.service_database_url())
            if self._migrations is not None:
                await migrate(self.engine, self._migrations, self._metadata)
        if self.read_pool is not None:
            await self.read_pool.open()
        for name, work in self._startup:
            try:
                await work()
            except Exception as exc:
                log.error("%s cannot start: %s failed: %r", self.settings.service_name, name, exc)
                await self._close()
                raise
        await self.producer.get()
        if self.relay is not None:
            self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        for name, loop in self._background:
            with tracing.untraced():  # each round of a loop would be a trace of its own
                self._tasks.append(asyncio.create_task(loop(), name=name))
        await self.broker.start()
        self.ready = True
        log.info("%s ready", self.settings.service_name)

    async def stop(self) -> None:
        """Stop consuming first (in-flight batches finish), then the relay, then connections."""
        self.ready = False
        for consumer in self.consumers:
            await consumer.offsets.close()  # what is applied so far is not delivered again
        leave_groups_when_stopped(self.broker)
        await self.broker.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.relay is not None:
            with contextlib.suppress(Exception):
                await self.relay.publish_pending()  # hand over what the last batches staged
        await self._close()

    async def _close(self) -> None:
        """What ``on_stop`` asked for, then the connections."""
        for close in self._on_stop:
            with contextlib.suppress(Exception):
                await close()
        if self.relay is not None:
            await self.relay.close()
        await self.producer.close()
        if self.read_pool is not None:
            await self.read_pool.close()
        if self.engine is not None:
            await self.engine.dispose()

    def counters(self) -> dict[str, tuple[int, str]]:
        """What the service's consumers and relay did since it started, for ``/metrics``:
        name -> (value, help)."""
        counters: dict[str, tuple[int, str]] = {}
        if self.consumers:
            counters = {
                name: (sum(getattr(c.stats, field) for c in self.consumers), help_text)
                for name, (field, help_text) in _CONSUMER_COUNTERS.items()
            }
            counters["consumer_offset_commits_total"] = (
                sum(consumer.offsets.commits for consumer in self.consumers),
                "Offset commits sent to Kafka.",
            )
        if self.relay is not None:
            counters["outbox_published_total"] = (
                self.relay.published,
                "Outbox messages published and acknowledged by Kafka.",
            )
        return counters

    async def check(self) -> dict[str, str]:
        """Readiness checks: each part of the service that must answer."""
        checks = {"startup": "ok" if self.ready else "starting"}
        if self.engine is not None:
            try:
                async with self.engine.connect() as conn:
                    await asyncio.wait_for(conn.execute(text("SELECT 1")), 2.0)
                checks["database"] = "ok"
            except Exception as exc:
                checks["database"] = f"unavailable: {type(exc).__name__}"
        return checks


_SAMPLE_TIMEOUT_S = 5.0
"""The most one gauge's sampling may take (the broker or the database away)."""

_CONSUMER_COUNTERS = {
    "consumer_batches_total": ("batches", "Batches of records handed to the consumer."),
    "consumer_messages_applied_total": ("applied", "Messages applied by a handler."),
    "consumer_messages_skipped_total": (
        "skipped",
        "Messages of a type this service does not handle.",
    ),
    "consumer_dead_letters_total": ("dead_lettered", "Records sent to the dead-letter topic."),
    "consumer_retries_total": ("retried", "Handler attempts that failed and were tried again."),
    "consumer_batches_one_at_a_time_total": (
        "one_at_a_time",
        "Batches whose fast path failed, applied one by one.",
    ),
    "consumer_batches_extended_total": (
        "extended",
        "Batches that took in the records behind them (load).",
    ),
    "consumer_runs_applied_together_total": (
        "runs",
        "Runs of messages of one type applied together by a set-based use case.",
    ),
    "consumer_use_case_calls_total": (
        "use_case_calls",
        "Use case calls on the fast path: one per run applied together, else one per message.",
    ),
}
"""Metric name -> (ConsumerStats field, help)."""
