"""The transactional outbox and its relay.

A use case stages its outgoing messages in the ``outbox`` table inside its own transaction, so the
state change and the messages commit or vanish together. The relay publishes committed rows with
an idempotent producer, in commit order, and deletes them only after Kafka acknowledged them: a
crash in between publishes them again, which the consumers' inboxes absorb. A row may also hold a
raw record to publish as it is, with headers of its own (a dead letter, :func:`stage_record`).
"""

import asyncio
import logging
import time
from base64 import b64decode, b64encode
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    LargeBinary,
    String,
    any_,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from common import tracing
from common.db import libpq_url
from common.metrics import ServiceMetrics
from common.producer import KafkaProducerHolder, kafka_headers
from common.statements import PSYCOPG, defer_insert, table_of
from common.unit_of_work import ShopSession, unit_of
from schemas.envelope import Envelope, Message, encode

log = logging.getLogger(__name__)

RELAY_LOCK = 0x5E0B_0002
"""Advisory lock id: one relay of a service publishes at a time, so per-key order holds."""
_TAKE = "outbox_take"
"""The relay's prepared statement, on its own connection."""


class OutboxMixin:
    """Mix into a service's declarative base: ``class Outbox(OutboxMixin, Base)``."""

    __tablename__ = "outbox"

    if TYPE_CHECKING:  # the declarative base supplies the keyword constructor

        def __init__(self, **columns: Any) -> None: ...

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    message_id: Mapped[UUID] = mapped_column(unique=True)
    topic: Mapped[str] = mapped_column(String(255))
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    message_type: Mapped[str] = mapped_column(String(100))
    correlation_id: Mapped[UUID]
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    headers: Mapped[list[list[str | None]] | None] = mapped_column(JSONB)
    """The record's every Kafka header, ``[name, base64 of the value or null]`` pairs: a raw
    record's own (see :func:`stage_record`), or a message's staged in a trace (its type,
    correlation id and ``traceparent``). None for a message staged outside one: the relay makes
    its headers from its type and correlation id."""


def stage(
    session: AsyncSession,
    outbox: type[OutboxMixin],
    message: Message,
    *,
    cause: Envelope | None = None,
    correlation_id: UUID | None = None,
    causation_id: UUID | None = None,
) -> Envelope:
    """Add ``message`` to the outbox in ``session``'s transaction; it is published after commit.

    The row is written when the unit of work ends (:func:`common.statements.defer_insert`): a
    batch of consumed messages writes all its outgoing messages with one statement, in staging
    order.

    With ``cause``, the message joins the cause's saga (same correlation id, caused by it); a
    process that kept only those two ids (not the whole cause) passes them instead.
    """
    if cause is not None:
        correlation_id, causation_id = cause.correlation_id, cause.id
    envelope = message.envelope(correlation_id=correlation_id, causation_id=causation_id)
    traceparent = tracing.traceparent_for(causation_id)
    _defer(
        session,
        outbox,
        {
            "message_id": envelope.id,
            "topic": message.TOPIC.name,
            "key": message.key(),
            "message_type": envelope.type,
            "correlation_id": envelope.correlation_id,
            "payload": encode(envelope),
            "headers": None
            if traceparent is None
            else _stored_headers(
                kafka_headers(
                    envelope.type,
                    envelope.correlation_id,
                    {tracing.TRACEPARENT: traceparent},
                )
            ),
        },
    )
    return envelope


def stage_record(
    session: AsyncSession,
    outbox: type[OutboxMixin],
    *,
    record_id: UUID,
    record_type: str,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
) -> None:
    """Add a record to the outbox to be published as it is, with its own key, value and headers
    (a dead letter: another record's, with the reason added), in ``session``'s transaction.
    ``record_id`` names the row, and stands for its correlation id too (its headers carry the
    record's own, if it had one)."""
    _defer(
        session,
        outbox,
        {
            "message_id": record_id,
            "topic": topic,
            "key": key,
            "message_type": record_type,
            "correlation_id": record_id,
            "payload": value,
            "headers": _stored_headers(headers),
        },
    )


def _stored_headers(headers: Sequence[tuple[str, bytes | None]]) -> Jsonb:
    """Kafka headers as the outbox's ``headers`` column keeps them: every header of the record,
    ``[name, base64 of the value or null]`` pairs."""
    return Jsonb(
        [[name, None if data is None else b64encode(data).decode()] for name, data in headers]
    )


def _defer(session: AsyncSession, outbox: type[OutboxMixin], row: dict[str, Any]) -> None:
    defer_insert(session, table_of(outbox), row)
    unit_of(session).staged = True


def _kafka_headers_of(
    stored: Any, message_type: str, correlation: UUID
) -> Sequence[tuple[str, bytes | None]]:
    """A row's stored headers; ones it cannot read (another shape) are logged and replaced by
    the message's type and correlation id, so that one odd row never stalls the relay."""
    try:
        return [(str(name), None if data is None else b64decode(data)) for name, data in stored]
    except (TypeError, ValueError):
        log.warning("outbox row of %s with unreadable headers %r", message_type, stored)
        return kafka_headers(message_type, correlation)


_wakers: set[Callable[[], None]] = set()


@event.listens_for(ShopSession, "after_commit")
def _wake_relays(session: Session) -> None:
    # also called as a savepoint is released: the rows are not committed yet then
    if not session.in_nested_transaction() and unit_of(session).staged:
        for wake in _wakers:
            wake()


class OutboxRelay:
    """Publishes a service's outbox; :meth:`publish_pending` is one step, :meth:`run` the loop."""

    def __init__(
        self,
        database_url: str,
        outbox: type[OutboxMixin],
        producer: KafkaProducerHolder,
        *,
        batch_size: int = 500,
        idle_poll_s: float = 0.5,
        metrics: ServiceMetrics | None = None,
        stall_limit_s: float = 60.0,
    ) -> None:
        self._conninfo = libpq_url(database_url)
        self._stall_limit_ms = int(stall_limit_s * 1000)
        """How long the server lets a round's transaction sit idle before it ends it: a
        process stalled or hung while it holds the relay's lock would otherwise stop every
        replica's relay for as long as it lives. Its rows stay (its delete never commits); what
        it had sent goes out again, and the inboxes absorb it. Far above a round's wait for
        Kafka (the producer's requests time out after 15 s)."""
        self._metrics = metrics
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._round = asyncio.Lock()
        """One round at a time on the relay's connection (the loop, a test, the last handover)."""
        self._producer = producer
        self._batch_size = batch_size
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()
        self.published = 0
        table = table_of(outbox)
        # The lock is a CTE, so it is tried once: the replica that holds it publishes, in seq
        # order, the others take nothing. Deleting exactly the rows read matters: a row with a
        # lower seq may still commit later, and it must stay for the next round.
        lock = select(func.pg_try_advisory_xact_lock(RELAY_LOCK).label("held")).cte("relay_lock")
        batch = (
            select(table.c.seq)
            .where(select(lock.c.held).scalar_subquery())
            .order_by(table.c.seq)
            .limit(batch_size)
        )
        take = (
            delete(table)
            .where(table.c.seq == any_(func.array(batch.scalar_subquery())))
            .returning(
                table.c.seq,
                table.c.topic,
                table.c.key,
                table.c.payload,
                table.c.message_type,
                table.c.correlation_id,
                table.c.headers,
            )
        )
        # Run on a connection of the relay's own, straight through psycopg: a round is two round
        # trips and no more (a quarter of the client CPU of the same through a session). The
        # statement is prepared once per connection, with SQL's PREPARE (a query string of
        # more than one statement is never prepared by psycopg): planned for every round, it
        # cost the server about as much again as running it. The outbox is a queue: its heap
        # and index fill with deleted rows between two vacuums, so the plan must not scan it
        # (the planner, which sees a few live rows, did: 0.2 to 0.5 ms a round, growing until
        # the next vacuum); by the index (seqscan off on this connection), it walks the index
        # entries of the deleted rows, which the first scan past them marks dead.
        self._prepare_take = f"PREPARE {_TAKE} AS " + str(
            take.compile(dialect=PSYCOPG, compile_kwargs={"literal_binds": True})
        )

    def wake(self) -> None:
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish up to one batch of committed outbox rows; returns how many were published.

        One statement takes the relay's lock and deletes the batch, returning it; the deletion
        commits only after Kafka acknowledged every row, so a failure leaves the rows in place.
        """
        async with self._round:
            return await self._publish_round()

    async def _publish_round(self) -> int:
        connection = await self._connect()
        try:
            # Two round trips a round, not three: psycopg's own transaction, and its pipeline
            # mode, wait for BEGIN's answer before they send the statement.
            taken = await connection.execute(f"BEGIN; EXECUTE {_TAKE}")
            taken.nextset()
            rows = sorted(await taken.fetchall())
            if rows:  # none: nothing to publish, or another replica is publishing this outbox
                producer = await self._producer.get()
                started = time.perf_counter()
                acks: list[asyncio.Future[Any]] = []
                for _, topic, key, payload, message_type, correlation, own in rows:
                    headers = (
                        kafka_headers(message_type, correlation)
                        if own is None
                        else _kafka_headers_of(own, message_type, correlation)
                    )
                    acks.append(await producer.send(topic, value=payload, key=key, headers=headers))
                await asyncio.gather(*acks)
                if self._metrics is not None:
                    self._metrics.publish_seconds.observe(time.perf_counter() - started)
            await connection.execute("COMMIT")
        except asyncio.CancelledError:
            await self.close()  # a statement may have been cut off halfway
            raise
        except Exception:
            await self._roll_back(connection)  # the rows stay for the next round
            raise
        self.published += len(rows)
        return len(rows)

    async def _roll_back(self, connection: "psycopg.AsyncConnection[Any]") -> None:
        if not connection.broken:
            try:
                await connection.execute("ROLLBACK")
                return
            except psycopg.Error:
                log.warning("outbox relay could not roll back; reconnecting", exc_info=True)
        await self.close()  # the server went away, or the session is unusable: a new one

    async def _connect(self) -> "psycopg.AsyncConnection[Any]":
        if self._connection is None or self._connection.closed:
            # Autocommit: the relay begins and ends its transactions itself (see above). Without
            # psycopg's own prepared statements, which it drops with DEALLOCATE ALL (ours too)
            # after a ROLLBACK.
            connection = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, prepare_threshold=None
            )
            try:
                await connection.execute(
                    "SET enable_seqscan = off;"
                    f" SET idle_in_transaction_session_timeout = {self._stall_limit_ms};"
                    f" {self._prepare_take}"
                )
            except BaseException:
                await connection.close()
                raise
            self._connection = connection
        return self._connection

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def run(self) -> None:
        """Publish whenever a local transaction staged messages, and poll for leftovers (its
        statements untraced: every round would be a trace of its own)."""
        with tracing.untraced():
            await self._run()

    async def _run(self) -> None:
        _wakers.add(self.wake)
        try:
            while True:
                self._wake.clear()
                try:
                    published = await self.publish_pending()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("outbox relay failed; retrying with a new producer")
                    await self._producer.reset()
                    await asyncio.sleep(1.0)
                    continue
                if published >= self._batch_size:
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)
                except TimeoutError:
                    pass
        finally:
            _wakers.discard(self.wake)
