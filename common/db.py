"""Database plumbing: the async engine, sessions, creating a service's database, migrations."""

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    ColumnElement,
    Connection,
    MetaData,
    Table,
    any_,
    bindparam,
    event,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

SessionMaker = async_sessionmaker[AsyncSession]

_ENV_DIR = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x5E0B_0001
"""Advisory lock id: replicas starting together apply migrations one at a time."""


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    # No pre-ping: it doubled the round trips of every transaction. A connection that died with
    # its server fails its next use, the pool drops it, and the work is retried or redelivered.
    return create_async_engine(url, pool_size=pool_size, max_overflow=10)


_batch: ContextVar[tuple[AsyncSession, bool] | None] = ContextVar("batch", default=None)
"""The open batch transaction's session, and whether each use case gets a savepoint in it."""

_DEFERRED = "deferred_inserts"


def table_of(model: type[Any]) -> Table:
    """A mapped class's table, for Core statements (with parameter lists, the ORM would turn an
    insert or update of the class itself into its own bulk operation)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def any_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column = ANY(:name)``, the values bound as one array when executed, so that a hot
    statement is built once, as a module constant, whatever the number of values (building a
    select at each call added about a third to its client CPU through the session)."""
    return column == any_(bindparam(name, type_=ARRAY(column.type)))


def defer_insert(session: AsyncSession, into: Table | Insert, row: dict[str, Any]) -> None:
    """Insert ``row`` when the current unit of work ends, together with the other deferred rows:
    one statement per table for a whole batch, rows in the order they were deferred. For rows
    nothing reads back in the same transaction (the outbox, a history); the unit is a
    ``sessionmaker.begin()`` block, or the consumer's batch. ``into`` is a table, or an insert
    into one that sets further columns with SQL (``insert(t).values(at=func.clock_timestamp())``,
    a module-level constant: rows are grouped by it)."""
    session.info.setdefault(_DEFERRED, []).append((into, row))


async def write_deferred(session: AsyncSession) -> None:
    deferred: list[tuple[Table | Insert, dict[str, Any]]] = session.info.get(_DEFERRED, [])
    if not deferred:
        return
    rows, targets = list(deferred), dict.fromkeys(into for into, _ in deferred)
    deferred.clear()
    for into in targets:
        statement = into if isinstance(into, Insert) else _insert_into(into)
        await session.execute(statement, [row for target, row in rows if target is into])


_inserts: dict[Table, Insert] = {}


def _insert_into(table: Table) -> Insert:
    if table not in _inserts:
        _inserts[table] = insert(table)
    return _inserts[table]


@event.listens_for(Session, "before_commit")
def _refuse_unwritten(session: Session) -> None:
    if session.info.get(_DEFERRED):
        raise RuntimeError("deferred rows were never written: commit through sessionmaker.begin()")


@event.listens_for(Session, "after_rollback")
def _forget_deferred(session: Session) -> None:
    session.info.pop(_DEFERRED, None)


class BatchingSessionMaker(async_sessionmaker[AsyncSession]):
    """A sessionmaker whose ``begin()`` writes the unit's deferred rows before it commits, and
    joins the consumer's batch transaction when one is open (see :func:`batch_transaction`), so
    the batch reaches the disk with one commit."""

    def begin(self) -> AbstractAsyncContextManager[AsyncSession]:  # type: ignore[override]
        batch = _batch.get()
        if batch is None:
            return _unit(super().begin())
        session, savepoints = batch
        return _savepoint(session) if savepoints else _joined(session)


@asynccontextmanager
async def _unit(
    begin: AbstractAsyncContextManager[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with begin as session:
        yield session
        await write_deferred(session)


@asynccontextmanager
async def _savepoint(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    mark = len(session.info.get(_DEFERRED, ()))
    try:
        async with session.begin_nested():
            yield session
            await write_deferred(session)
    except BaseException:
        del session.info.get(_DEFERRED, [])[mark:]  # what the rolled-back use case deferred
        raise


@asynccontextmanager
async def _joined(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    yield session
    # As a savepoint's end would (deferred rows wait for the batch's end). Most use cases write
    # with statements, not ORM objects: an empty flush still costs its unit-of-work setup.
    if session.new or session.dirty or session.deleted:
        await session.flush()


@asynccontextmanager
async def batch_transaction(
    sessionmaker: SessionMaker, *, savepoints: bool = True
) -> AsyncIterator[AsyncSession]:
    """One transaction for a batch of messages. With ``savepoints`` each use case inside runs in
    a savepoint (it commits or rolls back on its own); without, the use cases simply share the
    transaction, and any failure rolls back the whole batch."""
    async with sessionmaker.begin() as session:
        token = _batch.set((session, savepoints))
        try:
            yield session
        finally:
            _batch.reset(token)


def create_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    return BatchingSessionMaker(engine, expire_on_commit=False)


def libpq_url(url: str, *, database: str | None = None) -> str:
    """An SQLAlchemy URL (``postgresql+psycopg://...``) as psycopg itself takes it."""
    target = make_url(url).set(drivername="postgresql")
    if database is not None:
        target = target.set(database=database)
    return target.render_as_string(hide_password=False)


async def ensure_database(url: str) -> None:
    """Create the database named in ``url`` when its server does not have it yet."""
    target = make_url(url)
    async with await psycopg.AsyncConnection.connect(
        libpq_url(url, database="postgres"), autocommit=True
    ) as conn:
        found = await conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)
        )
        if await found.fetchone() is None:
            try:
                await conn.execute(f'CREATE DATABASE "{target.database}"')
            except psycopg.errors.DuplicateDatabase:
                pass  # another replica created it first


def alembic_config(versions: Path, metadata: MetaData, connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_ENV_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(versions))
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = metadata
    return config


def _upgrade(connection: Connection, versions: Path, metadata: MetaData) -> None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK})
    command.upgrade(alembic_config(versions, metadata, connection), "head")


async def migrate(engine: AsyncEngine, versions: Path, metadata: MetaData) -> None:
    """Apply the service's Alembic migrations (its ``migrations/`` folder) up to head."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, versions, metadata)
