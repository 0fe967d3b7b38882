"""What a service runs besides HTTP: its producer, consumers and loops; for a service with a
database (:class:`ServiceRuntime`), also its engine, migrations and outbox relay.

Built once in the service's ``create_app(settings)`` and started by the app's lifespan; nothing
connects at import time.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from faststream.kafka import KafkaBroker
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from common import collector, tracing
from common.broker import create_broker, leave_groups_when_stopped, subscribe
from common.consumer import BatchConsumer
from common.db import ReadPool, create_engine, ensure_database, migrate
from common.handlers import Handlers
from common.inbox import InboxMixin, forget_old
from common.lag import LagReader
from common.metrics import Figures, ServiceMetrics
from common.outbox import OutboxMixin, OutboxRelay
from common.producer import KafkaProducerHolder
from common.settings import ServiceSettings
from common.statements import table_of
from common.unit_of_work import create_sessionmaker
from schemas.topics import REDELIVERY_HOURS, Topic

log = logging.getLogger(__name__)


class Runtime:
    """A service's producer, broker, consumers and background loops, with one start and stop;
    :class:`ServiceRuntime` adds the database (the gateway has none)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.producer = KafkaProducerHolder(settings.kafka_access(), settings.service_name)
        self.broker: KafkaBroker = create_broker(settings)
        self.consumers: list[BatchConsumer] = []
        self.metrics = ServiceMetrics(settings.service_name)
        self.metrics.add(
            Figures(
                settings.service_name,
                lambda: {**self.counters(), **collector.counters()},
                collector.gauges,
            )
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._startup: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        self._background: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        self._on_stop: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.ready = False
        self._consumed: list[Topic] = []
        self._lag = LagReader(settings.kafka_access())
        self.on_stop(self._lag.close)
        self.every("metrics-gauges", settings.metrics_sample_interval_s, self._sample_gauges)

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

    def on_stop(self, close: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Call ``close()`` when the service stops, after its loops ended."""
        self._on_stop.append(close)

    async def _sample_gauges(self) -> None:
        """The gauges of ``/metrics`` that cost a query, each on its own within a time limit: the
        broker away leaves the database's gauges sampled, and the reverse. A gauge that could
        not be read keeps its last value; the log says why."""
        if not self._consumed:
            return
        try:
            async with asyncio.timeout(_SAMPLE_TIMEOUT_S):
                behind = await self._lag.per_partition(self.settings.consumer_group, self._consumed)
            self.metrics.lag({(tp.topic, tp.partition): n for tp, n in behind.items()})
        except Exception as exc:
            log.warning("consumer lag not sampled: %s: %s", type(exc).__name__, exc)
            await self._lag.close()  # opened again, afresh, next time

    async def start(self) -> None:
        await self._open()
        for name, work in self._startup:
            try:
                await work()
            except Exception as exc:
                log.error("%s cannot start: %s failed: %r", self.settings.service_name, name, exc)
                await self._close()
                raise
        await self.producer.get()
        self._start_loops()
        await self.broker.start()
        self.ready = True
        log.info("%s ready", self.settings.service_name)

    async def _open(self) -> None:
        """What must be there before the start-up work runs."""

    def _start_loops(self) -> None:
        for name, loop in self._background:
            with tracing.untraced():  # each round of a loop would be a trace of its own
                self._tasks.append(asyncio.create_task(loop(), name=name))

    async def stop(self) -> None:
        """Stop consuming first (in-flight batches finish), then the loops, then connections."""
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
        await self._hand_over()
        await self._close()

    async def _hand_over(self) -> None:
        """What the loops left to do once they are stopped."""

    async def _close(self) -> None:
        """What ``on_stop`` asked for, then the connections."""
        for close in self._on_stop:
            with contextlib.suppress(Exception):
                await close()
        await self._close_connections()

    async def _close_connections(self) -> None:
        await self.producer.close()

    def counters(self) -> dict[str, tuple[int, str]]:
        """What the service's consumers did since it started, for ``/metrics``: name -> (value,
        help)."""
        if not self.consumers:
            return {}
        counters = {
            name: (sum(getattr(c.stats, field) for c in self.consumers), help_text)
            for name, (field, help_text) in _CONSUMER_COUNTERS.items()
        }
        counters["consumer_offset_commits_total"] = (
            sum(consumer.offsets.commits for consumer in self.consumers),
            "Offset commits sent to Kafka.",
        )
        return counters

    async def check(self) -> dict[str, str]:
        """Readiness checks: each part of the service that must answer."""
        return {"startup": "ok" if self.ready else "starting"}


class ServiceModels(Protocol):
    """A service's ``models`` module: its tables, its outbox and inbox; its Alembic migrations
    are in ``migrations/`` beside it."""

    @property
    def Base(self) -> type[DeclarativeBase]: ...
    @property
    def Outbox(self) -> type[OutboxMixin]: ...
    @property
    def Inbox(self) -> type[InboxMixin]: ...
    @property
    def __file__(self) -> str | None: ...


class ServiceRuntime(Runtime):
    """A service that owns a database: its engine and sessions, its migrations, inbox and
    outbox relay, besides what every :class:`Runtime` runs."""

    def __init__(self, settings: ServiceSettings, models: ServiceModels) -> None:
        super().__init__(settings)
        self._metadata = models.Base.metadata
        assert models.__file__ is not None
        self._migrations = Path(models.__file__).with_name("migrations")
        self._inbox = models.Inbox
        self._outbox = models.Outbox
        url = settings.service_database_url()
        self.engine = create_engine(url)
        self.sessionmaker = create_sessionmaker(self.engine)
        self.reads = create_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        """Autocommit sessions (same pool): read-only HTTP routes, and a write that must commit
        before the use case's own transaction does (payment_svc's charge attempts)."""
        self.read_pool = ReadPool(
            url, size=settings.read_pool_size, name=f"{settings.service_name}-reads"
        )
        """psycopg connections of their own for the hottest reads (see :class:`ReadPool`)."""
        self.relay = OutboxRelay(
            url,
            self._outbox,
            self.producer,
            batch_size=settings.relay_batch_size,
            idle_poll_s=settings.relay_idle_poll_s,
            metrics=self.metrics,
        )
        if settings.inbox_keep_hours < REDELIVERY_HOURS:
            log.warning(
                "INBOX_KEEP_HOURS is %g: Kafka may deliver a message again up to %d hours"
                " after it was written, and one whose id is forgotten by then is applied twice",
                settings.inbox_keep_hours,
                REDELIVERY_HOURS,
            )
        self.every("inbox-forget", settings.inbox_forget_interval_s, self._forget_old_ids)

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

    async def _forget_old_ids(self) -> None:
        keep = timedelta(hours=self.settings.inbox_keep_hours)
        forgotten = await forget_old(self.sessionmaker, self._inbox, keep)
        if forgotten:
            log.info(
                "forgot %d inbox ids older than %g hours",
                forgotten,
                self.settings.inbox_keep_hours,
            )

    async def _sample_gauges(self) -> None:
        """Besides the lag, the outbox's and the inbox's sizes."""
        await super()._sample_gauges()
        try:
            async with asyncio.timeout(_SAMPLE_TIMEOUT_S), self.reads() as session:
                await self._sample_tables(session)
        except Exception as exc:
            log.warning("outbox and inbox not sampled: %s: %s", type(exc).__name__, exc)

    async def _sample_tables(self, session: AsyncSession) -> None:
        outbox = table_of(self._outbox)
        age = func.extract("epoch", func.now() - func.min(outbox.c.created_at))
        rows, oldest = (
            await session.execute(select(func.count(), func.coalesce(age, 0)).select_from(outbox))
        ).one()
        self.metrics.outbox_rows.set(rows)
        self.metrics.outbox_oldest_seconds.set(float(oldest))
        estimate = await session.scalar(
            text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:table)"),
            {"table": self._inbox.__tablename__},
        )
        if estimate is None or estimate < 0:  # never analysed yet, so small: counted
            estimate = await session.scalar(select(func.count()).select_from(self._inbox))
        self.metrics.inbox_rows.set(float(estimate or 0))

    async def _open(self) -> None:
        await ensure_database(self.settings.service_database_url())
        await migrate(self.engine, self._migrations, self._metadata)
        await self.read_pool.open()

    def _start_loops(self) -> None:
        self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        super()._start_loops()

    async def _hand_over(self) -> None:
        with contextlib.suppress(Exception):
            await self.relay.publish_pending()  # what the last batches staged

    async def _close_connections(self) -> None:
        await self.relay.close()
        await super()._close_connections()
        await self.read_pool.close()
        await self.engine.dispose()

    def counters(self) -> dict[str, tuple[int, str]]:
        counters = super().counters()
        counters["outbox_published_total"] = (
            self.relay.published,
            "Outbox messages published and acknowledged by Kafka.",
        )
        return counters

    async def check(self) -> dict[str, str]:
        checks = await super().check()
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
