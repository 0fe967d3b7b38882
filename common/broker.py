"""Consuming: batch subscribers that commit offsets only after the database commit, retries, and
dead letters.

Each service hands :func:`subscribe` a map from message class to handler. Under load a batch
first takes in the records right behind it (:class:`BatchWindow`); its records are then put
topic by topic, in the order the service lists its topics (a partition's records keep their
order; records of different partitions never had one), so that runs of one type are long. For
every record of a batch the consumer then finds the handler: a type this service does not
handle is skipped by its ``type`` header alone, without parsing; the rest is decoded and
validated. Then the batch is applied in one database transaction; only once that has committed
are the batch's offsets handed to the :class:`OffsetCommitter`, which commits them at most every
few hundred milliseconds. A failure rewinds the batch's partitions instead
(``AckPolicy.NACK_ON_ERROR``):

- The fast path records the whole batch in the inbox with one statement, runs every handler in
  that one transaction, without savepoints (each handler's ``sessionmaker.begin()`` joins it),
  writes every outgoing message with one more statement, and commits once. Where a service's
  handler is :class:`SetBased`, each run of consecutive messages of its type goes to it at
  once: it reads and writes the run's rows with a few statements in all, not a few per message,
  with the same outcome as applying them one by one in order.
- If a handler raises, the fast path's transaction is rolled back as a whole and the batch is
  applied again one message at a time: each handler's ``begin()`` is then a savepoint, so a
  failing message is retried alone and, if it keeps failing, dead-lettered while the rest of the
  batch commits.

And:

- Malformed records (not JSON, no valid envelope, unknown type or version, invalid data) go to
  the service's dead-letter topic, with the reason and origin in headers. Every registered
  version of a handled type is read, upcast to the newest (:func:`schemas.envelope.read`).
- A handler error is retried ``handler_attempts`` times; if it persists the record goes to the
  dead-letter topic and the consumer moves on.
- A dead letter is staged in the service's outbox in the batch's transaction, once per origin
  offset (see :mod:`common.dead_letters`): a batch rolled back or delivered again writes none
  twice.
- An infrastructure error (the database or the broker away or busy: a lost connection, a
  deadlock, a serialization failure, an admin shutdown; :func:`is_infrastructure_error`) is never
  dead-lettered, however often it comes: after a pause that doubles with each failure in a row
  (:class:`Backoff`), the batch is nacked, FastStream seeks back, and the records come again. The
  ones already applied are absorbed by the inbox.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, cast

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka import Topic as KafkaTopic
from faststream.kafka.message import KafkaMessage
from faststream.message import AckStatus
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from common import tracing
from common.db import SessionMaker, batch_transaction
from common.dead_letters import DEAD_LETTER, DeadLetter, DeadLetters, reason_class
from common.inbox import InboxMixin, claim
from common.logs import correlation_id
from common.metrics import ServiceMetrics
from common.outbox import OutboxMixin
from common.producer import KafkaProducerHolder
from common.settings import ServiceSettings
from schemas.envelope import (
    Envelope,
    Message,
    UnknownMessageError,
    is_known_type,
    latest,
    read,
)
from schemas.topics import Topic

log = logging.getLogger(__name__)

Handler = Callable[[Envelope, Any], Awaitable[object]]
"""A use case of one message; what it returns (e.g. a ``Refused``) is for its HTTP callers."""
Handlers = Mapping[type[Message], Handler]
RunHandler = Callable[[Sequence[tuple[Envelope, Any]]], Awaitable[None]]
"""Applies a run of messages of one type, each about another aggregate (see
:func:`runs_of_one_type`), with the outcome of applying them one by one in order."""


@dataclass(frozen=True)
class SetBased:
    """A use case that applies a whole run of messages at once (a :data:`RunHandler`): the
    consumer's fast path hands it every run of its type; as a plain handler (the path that
    applies a failed batch one message at a time) it applies a run of one."""

    apply: RunHandler

    async def __call__(self, envelope: Envelope, message: Any) -> None:
        await self.apply(((envelope, message),))


INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    OSError,
    KafkaError,
    asyncio.TimeoutError,
)
TRANSIENT_SQLSTATES = ("08", "40", "53", "57", "58", "55006", "55P03")
"""SQLSTATEs (classes, or codes) of the database's passing failures: connection exceptions,
transaction rollbacks (serialization failure, deadlock), insufficient resources, operator
intervention (admin shutdown, crash shutdown, cancel), system errors, and an object or lock in
use. The rest of psycopg's ``OperationalError`` family fails the same way on every try: a
program limit (an index row too large), an error in a routine."""


class PoisonMessageError(ValueError):
    """A record that no retry can fix: it goes to the dead-letter topic with this reason."""


def is_infrastructure_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the database or the broker being away or busy, not from the
    message or the handler: such a batch is delivered again, and never dead-lettered.

    psycopg's own errors (the statements of :mod:`common.db` run on psycopg itself) and
    SQLAlchemy's wrapping of them are told apart by their SQLSTATE (:data:`TRANSIENT_SQLSTATES`);
    a psycopg error without one was raised by the client: the connection is lost or none came.
    """
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    source = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(source, psycopg.Error):
        if source.sqlstate is None:
            return isinstance(source, psycopg.OperationalError)
        return source.sqlstate.startswith(TRANSIENT_SQLSTATES)
    return isinstance(exc, INFRASTRUCTURE_ERRORS)


METADATA_MAX_AGE_MS = 10_000
"""How old the cluster's metadata (who leads each partition) may get before a client asks again.
A consumer that takes a partition with no committed offset asks its leader where to start; when
that leader has moved, aiokafka (0.14) retries the old one without refreshing its metadata, and
the whole consumer waits until the metadata expires: five minutes by default, seen in the
failover cases when leaders moved back to a restarted node during a rebalance."""


def create_broker(settings: ServiceSettings) -> KafkaBroker:
    access = settings.kafka_access()
    return KafkaBroker(
        access.servers,
        security=access.faststream_security(),
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
        client_id=settings.service_name,
        logger=logging.getLogger(f"{settings.service_name}.broker"),
        log_level=logging.DEBUG,
        # No dependency injection: the handler takes the message itself (see _message). With
        # it, FastStream resolved the message from its context in a worker thread, per batch.
        apply_types=False,
    )


class Routed(NamedTuple):
    record: ConsumerRecord[bytes, bytes]
    envelope: Envelope
    message: Message
    handler: Handler


@dataclass
class ConsumerStats:
    batches: int = 0
    """Batches handed to the consumer (records per batch = (applied + skipped) / batches)."""
    applied: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    retried: int = 0
    one_at_a_time: int = 0
    """Batches whose fast path failed, applied again one message at a time."""
    extended: int = 0
    """Batches that arrived under load and took in the records behind them (BatchWindow)."""
    runs: int = 0
    """Runs of consecutive messages of one type applied together by a batch handler."""
    use_case_calls: int = 0
    """Calls of a use case on the fast path: one per run applied together, one per message
    otherwise (a batch's fixed cost is paid once; each call pays its statements)."""


class Backoff:
    """A pause that starts at ``first_s``, doubles with each failure in a row up to ``max_s``,
    and starts again from ``first_s`` after a success."""

    def __init__(self, first_s: float, max_s: float) -> None:
        self._first_s = first_s
        self._max_s = max_s
        self.failures = 0
        """Failures in a row."""

    def failed(self) -> float:
        """Count a failure; the pause before the next try."""
        pause: float = min(self._max_s, self._first_s * 2.0 ** min(self.failures, 30))
        self.failures += 1
        return pause

    def succeeded(self) -> None:
        self.failures = 0


class BatchConsumer:
    """Applies batches of records to a service's handlers; see the module docstring."""

    def __init__(
        self,
        settings: ServiceSettings,
        handlers: Handlers,
        producer: KafkaProducerHolder,
        sessionmaker: SessionMaker | None = None,
        inbox: type[InboxMixin] | None = None,
        outbox: type[OutboxMixin] | None = None,
        *,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._tracing = tracing.enabled()
        self._letters: list[DeadLetter] = []
        """The batch's dead letters written so far (counted by reason once it commits)."""
        self._sessionmaker = sessionmaker
        self._inbox = inbox
        for cls in handlers:
            if latest(cls.TYPE) is not cls:
                raise ValueError(
                    f"a handler of {cls.TYPE} v{cls.VERSION}: handlers take the newest version "
                    f"(v{latest(cls.TYPE).VERSION}), older ones are upcast to it"
                )
        self._handlers = {cls.TYPE: (cls, handler) for cls, handler in handlers.items()}
        self._set_based = {
            cls.TYPE: handler.apply
            for cls, handler in handlers.items()
            if isinstance(handler, SetBased)
        }
        self._dead_letters = DeadLetters(settings.service_name, producer, outbox, inbox)
        self.stats = ConsumerStats()
        self.offsets = OffsetCommitter(settings.consumer_commit_interval_ms)
        self.backoff = Backoff(settings.retry_backoff_s, settings.redelivery_backoff_max_s)

    async def apply_batch(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Apply every record of a batch; see the module docstring for the two paths. What
        escapes (an infrastructure error) is raised after a pause that grows with each failure
        in a row: FastStream then rewinds the batch's partitions, and it comes again."""
        self.stats.batches += 1
        self._letters.clear()
        started = time.perf_counter()
        try:
            with self._batch_span(records):
                applied = await self._apply(records)
        except Exception as exc:
            pause = self.backoff.failed()
            log.warning(
                "a batch of %d records failed (%s: %s); it comes again in %.1fs",
                len(records),
                type(exc).__name__,
                exc,
                pause,
            )
            await asyncio.sleep(pause)
            raise
        self.backoff.succeeded()
        if self._metrics is not None:
            self._observe(self._metrics, records, applied, time.perf_counter() - started)

    def _batch_span(
        self, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> AbstractContextManager[object]:
        """The batch's span, linked to each record's producer (nothing when tracing is off)."""
        if not self._tracing:
            return nullcontext()
        links = [
            tracing.link_to(context)
            for record in records
            if (context := tracing.context_of(record.headers)) is not None
        ]
        return tracing.tracer.start_as_current_span(
            f"{self._settings.service_name} batch",
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={"messaging.batch.message_count": len(records)},
        )

    def _run_span(self, run: Sequence["Routed"]) -> AbstractContextManager[object]:
        """A run's span (:func:`common.tracing.run_span`; nothing when tracing is off)."""
        if not self._tracing:
            return nullcontext()
        first = run[0]
        attributes: dict[str, str | int] = {
            "messaging.destination.name": first.record.topic,
            "messaging.batch.message_count": len(run),
        }
        if len(run) == 1:
            attributes["messaging.message.id"] = str(first.envelope.id)
            key = (first.record.key or b"").decode(errors="replace")
            attributes["messaging.kafka.message.key"] = key
            attributes["shop.correlation_id"] = str(first.envelope.correlation_id)
        return tracing.run_span(
            first.envelope.type,
            [(item.envelope.id, tracing.context_of(item.record.headers)) for item in run],
            attributes,
        )

    def _observe(
        self,
        metrics: ServiceMetrics,
        records: Sequence[ConsumerRecord[bytes, bytes]],
        applied: Sequence[ConsumerRecord[bytes, bytes]],
        seconds: float,
    ) -> None:
        """A committed batch: its time and size, each applied record's hop, its dead letters."""
        metrics.batch_seconds.observe(seconds)
        metrics.batch_records.observe(len(records))
        metrics.hops([(record.topic, record.timestamp) for record in applied], time.time())
        for letter in self._letters:
            metrics.dead_lettered(letter.record.topic, reason_class(letter))

    async def _apply(
        self, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """Apply the batch; the records it handed to a handler."""
        routed: list[Routed] = []
        unreadable: list[DeadLetter] = []
        for record in records:
            try:
                found = self._route(record)
            except PoisonMessageError as exc:
                unreadable.append(DeadLetter(record, str(exc), attempts=0))
                continue
            if found is None:
                self.stats.skipped += 1
            else:
                routed.append(found)
        applied = [item.record for item in routed]
        if self._sessionmaker is None:
            for letter in unreadable:
                self.stats.dead_lettered += await self._dead_letter(letter)
            for item in routed:
                if failed := await self._apply_with_retries(item):
                    self.stats.dead_lettered += await self._dead_letter(failed)
            return applied
        if not routed and not unreadable:
            return applied
        if await self._apply_together(self._sessionmaker, routed, unreadable):
            return applied
        self._letters.clear()  # rolled back with the fast path's transaction
        written = 0
        async with batch_transaction(self._sessionmaker) as session:
            for letter in unreadable:
                written += await self._dead_letter(letter, session)
            for item in routed:
                if failed := await self._apply_with_retries(item):
                    written += await self._dead_letter(failed, session)
                session.expunge_all()  # applied and flushed: keep the identity map small
        self.stats.dead_lettered += written
        return applied

    async def _dead_letter(self, letter: DeadLetter, session: AsyncSession | None = None) -> int:
        written = await self._dead_letters.write(letter, session)
        if written:
            self._letters.append(letter)
        return int(written)

    async def _apply_together(
        self, sessionmaker: SessionMaker, routed: list[Routed], unreadable: list[DeadLetter]
    ) -> bool:
        """The fast path: every message in one transaction, no savepoints, with the dead letters
        of the records that could not be read. False when a handler failed: the transaction is
        rolled back, for the caller to apply one message at a time."""
        try:
            async with batch_transaction(sessionmaker, savepoints=False) as session:
                if self._inbox is not None:
                    await claim(
                        session,
                        self._inbox,
                        [(item.envelope.id, item.envelope.type) for item in routed]
                        + [
                            (letter.id, DEAD_LETTER)
                            for letter in unreadable
                            if self._dead_letters.staged
                        ],
                    )
                written = 0
                for letter in unreadable:
                    written += await self._dead_letter(letter, session)
                for run in runs_of_one_type(routed):
                    with self._run_span(run):
                        await self._apply_run(run)
                    session.expunge_all()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise
            self.stats.one_at_a_time += 1
            log.warning(
                "a batch of %d failed (%s: %s); applying its messages one at a time",
                len(routed),
                type(exc).__name__,
                exc,
            )
            return False
        self.stats.applied += len(routed)
        self.stats.dead_lettered += written
        return True

    async def _apply_run(self, run: list["Routed"]) -> None:
        """One run of the fast path: to its set-based use case at once, or message by message."""
        set_based = self._set_based.get(run[0].envelope.type)
        if set_based is not None and len(run) > 1:
            await set_based([(item.envelope, item.message) for item in run])
            self.stats.runs += 1
            self.stats.use_case_calls += 1
            return
        self.stats.use_case_calls += len(run)
        for item in run:
            token = correlation_id.set(str(item.envelope.correlation_id))
            try:
                await item.handler(item.envelope, item.message)
            finally:
                correlation_id.reset(token)

    def _route(self, record: ConsumerRecord[bytes, bytes]) -> Routed | None:
        """The record's envelope, message and handler; None for a type this service ignores
        (known from the ``type`` header alone, without parsing, when it names a message of the
        record's topic: a header naming another topic's message is not believed)."""
        for name, value in record.headers or ():
            if name == "type":
                header_type = (value or b"").decode(errors="replace")
                if (
                    header_type not in self._handlers
                    and is_known_type(header_type)
                    and latest(header_type).TOPIC.name == record.topic
                ):
                    return None
                break
        raw = record.value
        if raw is None:
            raise PoisonMessageError("empty value (tombstone)")
        try:
            envelope = Envelope.model_validate_json(raw)
        except ValidationError as exc:
            raise PoisonMessageError(f"not a valid envelope: {_brief(exc)}") from exc
        if envelope.type not in self._handlers:
            if not is_known_type(envelope.type):
                raise PoisonMessageError(f"no contract for type {envelope.type!r}")
            return None  # a known message (of any version) that this service has no interest in
        _, handler = self._handlers[envelope.type]
        try:
            message = read(envelope)
        except UnknownMessageError as exc:
            raise PoisonMessageError(str(exc)) from exc
        except ValidationError as exc:
            raise PoisonMessageError(
                f"invalid {envelope.type} v{envelope.version} data: {_brief(exc)}"
            ) from exc
        except Exception as exc:  # an upcaster's failure: dead-lettered, to re-drive once fixed
            raise PoisonMessageError(
                f"{envelope.type} v{envelope.version} could not be upcast: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return Routed(record, envelope, message, handler)

    async def _apply_with_retries(self, item: Routed) -> DeadLetter | None:
        """Apply one message, retried; its dead letter if it kept failing."""
        token = correlation_id.set(str(item.envelope.correlation_id))
        try:
            with self._run_span([item]):
                return await self._retry(item)
        finally:
            correlation_id.reset(token)

    async def _retry(self, item: Routed) -> DeadLetter | None:
        record, envelope, message, handler = item
        attempts = self._settings.handler_attempts
        for attempt in range(1, attempts + 1):
            try:
                await handler(envelope, message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_infrastructure_error(exc):
                    raise
                if attempt == attempts:
                    log.exception("%s %s failed %d times", envelope.type, envelope.id, attempts)
                    return DeadLetter(record, f"{type(exc).__name__}: {exc}", attempts)
                self.stats.retried += 1
                await asyncio.sleep(self._settings.retry_backoff_s * attempt)
            else:
                self.stats.applied += 1
                return None
        raise AssertionError("unreachable: handler_attempts is at least 1")


def runs_of_one_type(routed: Sequence[Routed]) -> list[list[Routed]]:
    """The batch cut, in order, into runs of consecutive messages of one type and of distinct
    aggregates: a message of another type, or for an aggregate (its Kafka key) already in the
    run, starts the next run. A set-based use case can then treat a run's messages as
    independent of one another, apart from the rows they share (a product's stock)."""
    runs: list[list[Routed]] = []
    keys: set[object] = set()
    for item in routed:
        message = item.message
        key = getattr(message, message.KEY_FIELD)
        if runs and runs[-1][0].envelope.type == item.envelope.type and key not in keys:
            runs[-1].append(item)
            keys.add(key)
        else:
            runs.append([item])
            keys = {key}
    return runs


def _brief(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
        for error in exc.errors()[:5]
    )


class BatchWindow:
    """Adaptive batching: a batch that arrives while the consumer is busy waits up to
    ``window_ms`` for the records right behind it and is applied with them.

    A batch costs about the same whatever its size (a transaction, an offset commit, a relay
    round, the framework's wrappers), and Kafka answers a fetch as soon as one record is there,
    so under load the batches stay small and the fixed costs dominate. A batch is extended for
    one window when the consumer is busy: the previous batch ended less than a window ago, and
    applying batches took at least ``busy_share`` of the last ``horizon_s`` (the windows
    themselves not counted). Otherwise it is applied at once: a consumer with time to spare
    pays no latency for it. The previous batch's end alone was not enough: a saga's next event
    often comes right after the one before (payment_svc's StockReserved 10 ms after its
    OrderPlaced), and waiting a window for records that were not coming doubled an order's
    latency at 5 to 25 orders/s.
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


def subscribe(
    broker: KafkaBroker,
    settings: ServiceSettings,
    topics: Sequence[Topic],
    consumer: BatchConsumer,
) -> Callable[[KafkaMessage], Awaitable[None]]:
    """Register ``consumer`` on ``topics`` in the service's consumer group; returns the batch
    handler FastStream calls (a test can call it with a message of its own)."""
    window = BatchWindow(
        settings.consumer_batch_window_ms,
        settings.consumer_max_records,
        busy_share=settings.consumer_batch_window_busy,
    )
    offsets = consumer.offsets
    topic_rank = {topic.name: rank for rank, topic in enumerate(topics)}
    fetch_min_bytes, fetch_max_wait_ms = _fetch_wait(settings.consumer_fetch_wait_ms)

    def by_topic(record: ConsumerRecord[bytes, bytes]) -> int:
        return topic_rank.get(record.topic, len(topic_rank))

    @broker.subscriber(
        # provisioned by the launcher (python -m stack topics) with their partitions and
        # replicas; a consumer never creates one (FastStream would: one partition, one replica)
        *(KafkaTopic(topic.name, declare=False) for topic in topics),
        group_id=settings.consumer_group,
        group_instance_id=settings.consumer_instance_id,
        batch=True,
        max_records=settings.consumer_max_records,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        session_timeout_ms=settings.consumer_session_timeout_ms,
        fetch_min_bytes=fetch_min_bytes,
        fetch_max_wait_ms=fetch_max_wait_ms,
        heartbeat_interval_ms=settings.consumer_session_timeout_ms // 10,
        parser=_parsed,
        decoder=_message,
    )
    async def on_batch(message: KafkaMessage) -> None:
        records = message.raw_message
        batch = records if isinstance(records, tuple) else (records,)
        kafka = cast(AIOKafkaConsumer, message.consumer)
        extended = await window.extend(kafka, batch)
        consumer.stats.extended += len(extended) > len(batch)
        # Topic by topic, in the order the service lists them; a partition's records keep
        # their order (the sort is stable), and records of different partitions never had one.
        # The partitions come interleaved, so this makes the runs of one type longer: fewer
        # use case calls, each a few statements (at 100 orders/s, order_svc's batches had runs
        # alternating PlaceOrder, PaymentSucceeded, PlaceOrder...).
        batch = tuple(sorted(extended, key=by_topic))
        # On a failure FastStream rewinds every partition of the message's records to its
        # earliest one: the records the window added must come again too.
        message.raw_message = batch
        try:
            await consumer.apply_batch(batch)
        finally:
            window.ended()
        # Applied and committed to the database: the offsets may go. They go from here, not
        # from FastStream's ack, which would commit the consumer's positions at once.
        message.committed = AckStatus.ACKED
        await offsets.applied(kafka, batch)

    return on_batch


def leave_groups_when_stopped(broker: KafkaBroker) -> None:
    """Have the broker's consumers leave their groups as they stop, as a dynamic member does.

    A static member (``group_instance_id``) does not leave when it stops (KIP-345; aiokafka
    sends no LeaveGroup for one): its partitions would wait for its session to expire before
    another replica got them, and the group could not be reset (``python -m stack rewind``).
    A crash still leaves them waiting for the same id to come back, at once, or for the
    session's expiry."""
    for subscriber in broker.subscribers:
        coordinator = getattr(getattr(subscriber, "consumer", None), "_coordinator", None)
        if coordinator is not None:
            coordinator._group_instance_id = None  # aiokafka leaves as a dynamic member


def _fetch_wait(wait_ms: int) -> tuple[int, int]:
    """``fetch_min_bytes`` and ``fetch_max_wait_ms`` for a fetch the broker answers once
    ``wait_ms`` have passed (or a megabyte is there), or, for 0, as soon as one record is there
    (aiokafka's default)."""
    if wait_ms == 0:
        return 1, 500
    return 1 << 20, wait_ms


async def _parsed(
    records: tuple[ConsumerRecord[bytes, bytes], ...],
    parse: Callable[[tuple[ConsumerRecord[bytes, bytes], ...]], Awaitable[KafkaMessage]],
) -> KafkaMessage:
    """FastStream's parsing of a batch, which decodes every header value as UTF-8 text. A
    header without a value, or with bytes that are no text (Kafka allows both), would fail the
    batch before the consumer sees it, at every delivery: such a batch is parsed from copies
    whose header values are made text, and the consumer gets the records as they came."""
    try:
        return await parse(records)
    except (AttributeError, UnicodeDecodeError):
        message = await parse(tuple(_with_text_headers(record) for record in records))
        message.raw_message = records
        return message


def _with_text_headers(record: ConsumerRecord[bytes, bytes]) -> ConsumerRecord[bytes, bytes]:
    headers = [
        (name, (value or b"").decode(errors="replace").encode()) for name, value in record.headers
    ]
    return replace(record, headers=headers)


async def _message(message: KafkaMessage) -> KafkaMessage:
    """Hand the handler the message itself, records undecoded: :class:`BatchConsumer` validates
    them and dead-letters failures."""
    return message
