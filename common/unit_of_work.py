"""The unit of work: ``sessionmaker.begin()``, what a transaction defers until it ends, and the
consumer's batch transaction.

A use case writes ``async with sessionmaker.begin() as session:`` whether an HTTP route or the
consumer calls it; what the block is depends on where it runs, so that a batch of messages
reaches the disk with one commit:

=========================================  ============================  =====================
where ``begin()`` runs                     the block is                  its deferred rows go
=========================================  ============================  =====================
outside a batch (a route, a test)          its own transaction           with its ``COMMIT``,
                                                                         one round trip
the consumer's fast path                   a part of the batch's         with the batch's
(``batch_transaction(savepoints=False)``)  transaction (joined)          ``COMMIT``
a batch applied one message at a time      a savepoint in the batch's    at the savepoint's
(``batch_transaction()``)                  transaction                   end
=========================================  ============================  =====================

What a transaction carries besides SQLAlchemy's own state is one :class:`Unit`, reached through
:func:`unit_of`; it is reset when the transaction ends. Sessions are :class:`ShopSession`s, so
the listeners that keep it are the shop's and touch no other session in the process.
"""

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import psycopg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

SessionMaker = async_sessionmaker[AsyncSession]


class RowWriter(Protocol):
    """Writes a list of rows with one statement (:class:`common.statements.InsertRows`)."""

    async def execute(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None: ...


@dataclass
class Unit:
    """What one transaction of a session defers or remembers until it ends."""

    deferred: list[tuple[RowWriter, dict[str, Any]]] = field(default_factory=list)
    """Rows to insert when the unit ends (:func:`common.statements.defer_insert`), in order."""
    claimed: dict[UUID, bool] | None = None
    """The batch's message ids recorded in the inbox, and whether each was a first delivery
    (:func:`common.inbox.claim`)."""
    staged: bool = False
    """Whether outbox rows were staged: the relays are woken once it commits."""
    driver: "psycopg.AsyncConnection[Any] | None" = None
    """The psycopg connection under the transaction, once a statement asked for it."""


class ShopSession(Session):
    """The shop's sessions: the listeners below are attached to this class alone."""


_UNIT = "shop.unit"


def unit_of(session: AsyncSession | Session) -> Unit:
    """The :class:`Unit` of ``session``'s current transaction. Only a :class:`ShopSession` has
    one: another session would never write its deferred rows nor wake the relays."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    if not isinstance(sync, ShopSession):
        raise TypeError(f"not a shop session ({type(sync).__name__}): use create_sessionmaker")
    unit = session.info.get(_UNIT)
    if unit is None:
        unit = session.info[_UNIT] = Unit()
    assert isinstance(unit, Unit)
    return unit


@event.listens_for(ShopSession, "before_commit")
def _refuse_unwritten(session: Session) -> None:
    if unit_of(session).deferred:
        raise RuntimeError("deferred rows were never written: commit through sessionmaker.begin()")


@event.listens_for(ShopSession, "after_transaction_end")
def _end_unit(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the driver connection goes back to the pool
        session.info.pop(_UNIT, None)


async def driver_connection(session: AsyncSession) -> "psycopg.AsyncConnection[Any]":
    """The psycopg connection under ``session``'s transaction (begun if it was not), with the
    session's pending ORM changes flushed, as the session would before a statement."""
    await flush_pending(session)
    unit = unit_of(session)
    if unit.driver is None:
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        assert isinstance(driver, psycopg.AsyncConnection)
        unit.driver = driver
    return unit.driver


async def flush_pending(session: AsyncSession) -> None:
    """Flush the session's ORM changes, if it has any: most use cases write with statements,
    and an empty flush still costs its unit-of-work setup."""
    if session.new or session.dirty or session.deleted:
        await session.flush()


async def write_deferred(session: AsyncSession) -> None:
    """Insert the unit's deferred rows: one statement per target, rows in deferred order."""
    unit = unit_of(session)
    if not unit.deferred:
        return
    rows, unit.deferred = unit.deferred, []
    for into in dict.fromkeys(into for into, _ in rows):
        await into.execute(session, [row for target, row in rows if target is into])


_batch: ContextVar[tuple[AsyncSession, bool] | None] = ContextVar("batch", default=None)
"""The open batch transaction's session, and whether each use case gets a savepoint in it."""


class BatchingSessionMaker(async_sessionmaker[AsyncSession]):
    """A sessionmaker of :class:`ShopSession` sessions whose ``begin()`` is one of the three
    blocks of the module's table."""

    def __init__(self, bind: AsyncEngine, **options: Any) -> None:
        super().__init__(bind, sync_session_class=ShopSession, **options)

    def begin(self) -> AbstractAsyncContextManager[AsyncSession]:  # type: ignore[override]
        batch = _batch.get()
        if batch is None:
            return _own_transaction(super().begin())
        session, savepoints = batch
        return _savepoint(session) if savepoints else _joined(session)


@asynccontextmanager
async def _own_transaction(
    begin: AbstractAsyncContextManager[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with begin as session:
        yield session
        await _write_deferred_and_commit(session)


async def _write_deferred_and_commit(session: AsyncSession) -> None:
    """Write the unit's deferred rows and commit in one round trip (one psycopg pipeline); the
    session's own commit then finds the transaction over. A failure raises here, and the session
    rolls back."""
    if not unit_of(session).deferred:
        return  # the session commits as usual
    driver = await driver_connection(session)
    async with driver.pipeline():
        await write_deferred(session)
        await driver.execute("COMMIT")


@asynccontextmanager
async def _savepoint(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    mark = len(unit_of(session).deferred)
    try:
        async with session.begin_nested():
            yield session
            await write_deferred(session)
    except BaseException:
        del unit_of(session).deferred[mark:]  # what the rolled-back use case deferred
        raise


@asynccontextmanager
async def _joined(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    yield session
    await flush_pending(session)  # as a savepoint's end would (deferred rows wait for the batch)


@asynccontextmanager
async def batch_transaction(
    sessionmaker: SessionMaker, *, savepoints: bool = True
) -> AsyncIterator[AsyncSession]:
    """One transaction for a batch of messages: with ``savepoints`` each use case inside commits
    or rolls back on its own; without, any failure rolls back the whole batch."""
    async with sessionmaker.begin() as session:
        token = _batch.set((session, savepoints))
        try:
            yield session
        finally:
            _batch.reset(token)


def create_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    return BatchingSessionMaker(engine, expire_on_commit=False)
