"""The batch consumer: applies a service's records to its handlers, commits offsets only after
the database commit, retries, and dead-letters what cannot be applied.

For each batch (paced by :mod:`common.pacing`, subscribed by :func:`common.broker.subscribe`):

- every record is routed to its handler (:func:`common.handlers.route`); what cannot be read
  (not JSON, no valid envelope, unknown type or version, invalid data) is dead-lettered;
- the fast path applies the whole batch in one transaction without savepoints: the inbox claims
  every id with one statement, each run of one type goes to its :class:`SetBased` use case at
  once (or message by message), and the outgoing messages and the commit share one round trip;
- if a handler raises, that transaction rolls back and the batch is applied one message at a
  time, each in a savepoint, so a failing message is retried ``handler_attempts`` times and then
  dead-lettered while the rest commits;
- an infrastructure error (:func:`common.failures.is_infrastructure_error`) is never
  dead-lettered: after a pause that doubles with each failure in a row the batch is nacked and
  comes again, and the inbox absorbs what was already applied.

A dead letter is staged in the service's outbox in the batch's transaction, once per origin
offset (:mod:`common.dead_letters`). One transaction per batch, not per message, because a
transaction's fixed costs dominate a small message's.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from common import tracing
from common.dead_letters import DEAD_LETTER, DeadLetter, DeadLetters, reason_class
from common.failures import Backoff, PoisonMessageError, is_infrastructure_error
from common.handlers import Handlers, Routed, SetBased, route, runs_of_one_type
from common.inbox import InboxMixin, claim
from common.logs import correlation_id
from common.metrics import ServiceMetrics
from common.outbox import OutboxMixin
from common.pacing import OffsetCommitter
from common.producer import KafkaProducerHolder
from common.settings import ServiceSettings
from common.unit_of_work import SessionMaker, batch_transaction
from schemas.envelope import latest

log = logging.getLogger(__name__)


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
        self._handlers = {cls.TYPE: handler for cls, handler in handlers.items()}
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
            with tracing.batch_span(self._settings.service_name, records):
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
                found = route(self._handlers, record)
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
                    with tracing.consumer_run_span(run):
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

    async def _apply_with_retries(self, item: Routed) -> DeadLetter | None:
        """Apply one message, retried; its dead letter if it kept failing."""
        token = correlation_id.set(str(item.envelope.correlation_id))
        try:
            with tracing.consumer_run_span([item]):
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
