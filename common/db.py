"""Database plumbing: the async engine, sessions, creating a service's database, migrations."""

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from psycopg.pq import TransactionStatus
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import (
    ColumnElement,
    Connection,
    MetaData,
    Table,
    any_,
    bindparam,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import TableValuedAlias

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
_DRIVER = "driver_connection"
PSYCOPG = psycopg_dialect()  # type: ignore[no-untyped-call]


def table_of(model: type[Any]) -> Table:
    """A mapped class's table, for Core statements (with parameter lists, the ORM would turn an
    insert or update of the class itself into its own bulk operation)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def array_rows(
    columns: Mapping[str, Any], *, name: str | None = None, ordinality: str | None = None
) -> TableValuedAlias:
    """A table of rows bound as one array per column, each bind parameter named after its
    column (``unnest(:a, :b) AS name(a, b)``; ``columns`` maps names to SQL types), so that a
    statement over many rows is built once, whatever their number. With ``ordinality``, a
    column of that name numbers the rows in list order."""
    return (
        func.unnest(*(bindparam(key, type_=ARRAY(type_)) for key, type_ in columns.items()))
        .table_valued(*columns, with_ordinality=ordinality)
        .render_derived(name)
    )


def any_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column = ANY(:name)``, the values bound as one array when executed, so that a hot
    statement is built once, as a module constant, whatever the number of values (building a
    select at each call added about a third to its client CPU through the session)."""
    return column == any_(bindparam(name, type_=ARRAY(column.type)))


class Direct:
    """A hot statement compiled once for psycopg and run straight on the session's own
    connection, inside the session's transaction: the same SQL, the same transaction, without
    SQLAlchemy's execution layer, which cost about as much client CPU as the statement itself
    (a prebuilt select, 3,000 times: 0.28 ms through the session, 0.14 ms this way).

    For Core statements only (columns in, rows out): rows are named tuples, values as psycopg
    returns them. An insert's Python-side column defaults (``default=uuid4``) are filled in as
    SQLAlchemy would; lists are bound as one array (:func:`any_of`), not expanded.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._compiled: dict[frozenset[str], _Compiled] = {}

    async def rows(
        self, session: AsyncSession, params: Mapping[str, Any] | None = None
    ) -> list[Any]:
        sql, values = self._bind(params or {})
        cursor = (await driver_connection(session)).cursor(row_factory=namedtuple_row)
        await cursor.execute(sql, values)
        return await cursor.fetchall()

    async def rows_beginning(
        self, session: AsyncSession, params: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """As :meth:`rows`, as the statement that begins ``session``'s transaction: ``BEGIN``
        goes in one query string with it, one round trip instead of two (psycopg sends its own
        ``BEGIN`` and waits for the answer before the first statement, in pipeline mode too).

        The session's connection is taken in autocommit, so that psycopg sends no ``BEGIN`` of
        its own; the transaction is this ``BEGIN``'s, and the session's commit or rollback ends
        it as usual (psycopg sends them whenever the server is in a transaction). The pool puts
        the connection back out of autocommit when it returns. The values are bound on the
        client (a query string with more than one statement takes no parameters): for a
        statement whose values are ids, names and numbers. When the session already holds a
        connection, this is :meth:`rows`."""
        if session.info.get(_DRIVER) is not None or session.in_nested_transaction():
            return await self.rows(session, params)
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        driver = await driver_connection(session)
        if driver.info.transaction_status != TransactionStatus.IDLE:
            return await self.rows(session, params)  # not the first statement after all
        sql, values = self._bind(params or {})
        cursor = psycopg.AsyncClientCursor(driver, row_factory=namedtuple_row)
        await cursor.execute(f"BEGIN; {sql}", values)
        cursor.nextset()
        return await cursor.fetchall()

    async def scalars(
        self, session: AsyncSession, params: Mapping[str, Any] | None = None
    ) -> list[Any]:
        return [row[0] for row in await self.rows(session, params)]

    async def rows_read(
        self, pool: "ReadPool", params: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """As :meth:`rows`, on a connection of ``pool``, for an HTTP route's hot read. A read
        that finds its connection broken (the server restarted while it sat in the pool) is
        tried once more, on another."""
        sql, values = self._bind(params or {})
        for last in (False, True):
            async with pool.connection() as connection:
                try:
                    cursor = connection.cursor(row_factory=namedtuple_row)
                    await cursor.execute(sql, values)
                    return await cursor.fetchall()
                except psycopg.OperationalError:
                    if last or not connection.broken:
                        raise
        raise AssertionError("unreachable")

    async def execute(self, session: AsyncSession, params: Mapping[str, Any] | None = None) -> None:
        sql, values = self._bind(params or {})
        await (await driver_connection(session)).execute(sql, values)

    async def rows_many(
        self, session: AsyncSession, params: Sequence[Mapping[str, Any]]
    ) -> list[Any]:
        """Once per parameter set, sent in one round trip (psycopg pipelines the executions),
        and what each returned, in order: for a statement that :class:`InsertRows` cannot
        express (a ``RETURNING``, a column set from a subquery of the row's values)."""
        cursor = (await driver_connection(session)).cursor(row_factory=namedtuple_row)
        rows: list[Any] = []
        for _, same in _runs_of_same_keys(params):  # rows that set other columns: another run
            compiled = self._compile(same[0])
            values = [compiled.values(row) for row in same]
            if len(values) == 1:  # a pipeline costs more than it saves for one execution
                await cursor.execute(compiled.sql, values[0])
                rows.extend(await cursor.fetchall())
                continue
            await cursor.executemany(compiled.sql, values, returning=True)
            async for result in cursor.results():
                rows.extend(await result.fetchall())
        return rows

    def _bind(self, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        compiled = self._compile(params)
        return compiled.sql, compiled.values(params)

    def _compile(self, params: Mapping[str, Any]) -> "_Compiled":
        keys = frozenset(params)
        if keys not in self._compiled:
            self._compiled[keys] = _Compiled(self._statement, keys)
        return self._compiled[keys]


class ReadPool:
    """psycopg connections of the service's own, in autocommit, for the hot reads of its HTTP
    routes (:meth:`Direct.rows_read`; the gateway's checks before a command): an SQLAlchemy
    session's checkout and close cost three times the statement itself (an order's status,
    3,000 times: 0.47 ms of client CPU a read through a session, 0.12 ms this way). The
    connections are opened as they are needed, up to ``size``; a broken one is dropped."""

    def __init__(self, url: str, *, size: int, name: str = "reads") -> None:
        self._pool = AsyncConnectionPool(
            libpq_url(url),
            min_size=0,
            max_size=size,
            kwargs={"autocommit": True},
            open=False,
            name=name,
        )

    async def open(self) -> None:
        await self._pool.open()

    async def close(self) -> None:
        await self._pool.close()

    def connection(self) -> AbstractAsyncContextManager["psycopg.AsyncConnection[Any]"]:
        return self._pool.connection()


class _Compiled:
    """One statement compiled for one set of parameter names."""

    def __init__(self, statement: ClauseElement, keys: frozenset[str]) -> None:
        compiled = statement.compile(dialect=PSYCOPG, column_keys=sorted(keys))
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        if "POSTCOMPILE" in self.sql:
            raise ValueError(f"bind a list as one array (any_of), not expanded: {self.sql}")
        self._fixed = {name: value for name, value in compiled.params.items() if name not in keys}
        self._defaults: list[tuple[str, Callable[[], Any]]] = []
        for column in (*compiled.insert_prefetch, *compiled.update_prefetch):
            default = column.default if column in compiled.insert_prefetch else column.onupdate
            if column.key in keys or default is None:
                continue
            self._defaults.append((column.key, _default_value(default)))

    def values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        values = {**self._fixed, **params}
        for key, default in self._defaults:
            values[key] = default()
        return values


def _default_value(default: Any) -> Callable[[], Any]:
    """A column's Python-side default (``default=uuid4``, ``default="Pending"``)."""
    arg = default.arg
    if default.is_callable:
        return lambda: arg(None)  # SQLAlchemy wraps a no-argument callable to take a context
    if default.is_scalar:
        return lambda: arg
    raise ValueError(f"only Python-side column defaults are filled in, not {default!r}")


def _runs_of_same_keys(
    rows: Sequence[Mapping[str, Any]],
) -> Iterator[tuple[tuple[str, ...], Sequence[Mapping[str, Any]]]]:
    """Consecutive rows that set the same columns, in order."""
    start = 0
    while start < len(rows):
        keys = rows[start].keys()
        end = start + 1
        while end < len(rows) and rows[end].keys() == keys:
            end += 1
        yield tuple(keys), rows[start:end]
        start = end


async def driver_connection(session: AsyncSession) -> "psycopg.AsyncConnection[Any]":
    """The psycopg connection under ``session``'s transaction (begun if it was not), with the
    session's pending ORM changes flushed, as the session would before a statement."""
    await flush_pending(session)
    driver = session.info.get(_DRIVER)
    if driver is None:
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        session.info[_DRIVER] = driver
    assert isinstance(driver, psycopg.AsyncConnection)
    return driver


@event.listens_for(Session, "after_transaction_end")
def _forget_driver(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_DRIVER, None)  # the connection goes back to the pool


class InsertRows:
    """Inserts a list of rows into one table with one statement, the rows bound as one array per
    column (``INSERT ... SELECT ... FROM unnest(...)``), in list order, on psycopg inside the
    session's transaction. Ten rows cost 0.19 ms of client CPU, against 0.27 ms pipelined
    (``executemany``) and 1.0 ms one by one, and the server runs one statement, not ten.

    ``sql_values`` sets further columns with SQL, evaluated per row (``{"at":
    func.clock_timestamp()}``); ``skip_conflicts_on`` names the unique columns whose conflicts
    leave the existing row. Python-side column defaults are filled in as SQLAlchemy would.
    """

    def __init__(
        self,
        table: Table,
        *,
        sql_values: Mapping[str, ColumnElement[Any]] | None = None,
        skip_conflicts_on: Sequence[str] | None = None,
    ) -> None:
        self.table = table
        self._sql_values = dict(sql_values or {})
        self._skip_conflicts_on = skip_conflicts_on
        self._compiled: dict[tuple[str, ...], tuple[str, list[tuple[str, Callable[[], Any]]]]] = {}

    async def execute(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
        for keys, same in _runs_of_same_keys(rows):  # rows that set other columns: another run
            sql, defaults = self._compile(keys)
            columns: dict[str, list[Any]] = {key: [] for key in (*keys, *dict(defaults))}
            for row in same:
                for key in keys:
                    columns[key].append(row[key])
                for key, default in defaults:
                    columns[key].append(default())
            await (await driver_connection(session)).execute(sql, columns)

    def _compile(self, keys: tuple[str, ...]) -> tuple[str, list[tuple[str, Callable[[], Any]]]]:
        if keys not in self._compiled:
            defaults = [
                (column.key, _default_value(column.default))
                for column in self.table.columns
                if column.key not in keys
                and column.key not in self._sql_values
                and column.default is not None
            ]
            names = [*keys, *(key for key, _ in defaults)]
            rows = array_rows(
                {name: self.table.c[name].type for name in names}, ordinality="position_in_list"
            )
            statement = pg_insert(self.table).from_select(
                [*names, *self._sql_values],
                select(*(rows.c[name] for name in names), *self._sql_values.values()).order_by(
                    rows.c.position_in_list
                ),
            )
            if self._skip_conflicts_on is not None:
                statement = statement.on_conflict_do_nothing(
                    index_elements=list(self._skip_conflicts_on)
                )
            self._compiled[keys] = (str(statement.compile(dialect=PSYCOPG)), defaults)
        return self._compiled[keys]


class UpdateRows:
    """Updates a list of rows of one table with one statement, each row found by its ``match``
    column and given the other values of its dict, bound as one array per column (``UPDATE ...
    FROM unnest(...)``), on psycopg inside the session's transaction. The rows must be distinct
    (a row named twice is updated once, with either value)."""

    def __init__(self, table: Table, *, match: str) -> None:
        self.table = table
        self._match = match
        self._compiled: dict[tuple[str, ...], str] = {}

    async def execute(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
        for keys, same in _runs_of_same_keys(rows):
            columns = {key: [row[key] for row in same] for key in keys}
            await (await driver_connection(session)).execute(self._compile(keys), columns)

    def _compile(self, keys: tuple[str, ...]) -> str:
        if keys not in self._compiled:
            new = array_rows({key: self.table.c[key].type for key in keys}, name="new")
            statement = (
                update(self.table)
                .where(self.table.c[self._match] == new.c[self._match])
                .values({key: new.c[key] for key in keys if key != self._match})
            )
            self._compiled[keys] = str(statement.compile(dialect=PSYCOPG))
        return self._compiled[keys]


def defer_insert(session: AsyncSession, into: Table | InsertRows, row: dict[str, Any]) -> None:
    """Insert ``row`` when the current unit of work ends, together with the other deferred rows:
    one statement per table for a whole batch, rows in the order they were deferred. For rows
    nothing reads back in the same transaction (the outbox, a history); the unit is a
    ``sessionmaker.begin()`` block, or the consumer's batch. ``into`` is a table, or an
    :class:`InsertRows` that sets further columns with SQL or skips conflicts (a module-level
    constant: rows are grouped by it)."""
    session.info.setdefault(_DEFERRED, []).append((into, row))


async def write_deferred(session: AsyncSession) -> None:
    deferred: list[tuple[Table | InsertRows, dict[str, Any]]] = session.info.get(_DEFERRED, [])
    if not deferred:
        return
    rows, targets = list(deferred), dict.fromkeys(into for into, _ in deferred)
    deferred.clear()
    for into in targets:
        await _insert_into(into).execute(session, [row for target, row in rows if target is into])


_inserts: dict[Table, InsertRows] = {}


def _insert_into(into: Table | InsertRows) -> InsertRows:
    if isinstance(into, InsertRows):
        return into
    if into not in _inserts:
        _inserts[into] = InsertRows(into)
    return _inserts[into]


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
        await _write_deferred_and_commit(session)


async def _write_deferred_and_commit(session: AsyncSession) -> None:
    """Write the unit's deferred rows and commit, in one round trip: the inserts and ``COMMIT``
    go in one psycopg pipeline. The session's own commit then finds the transaction over and
    sends nothing. A failed insert or commit raises here, and the session rolls back."""
    if not session.info.get(_DEFERRED):
        return  # the session commits as usual
    driver = await driver_connection(session)
    async with driver.pipeline():
        await write_deferred(session)
        await driver.execute("COMMIT")


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
    await flush_pending(session)  # as a savepoint's end would (deferred rows wait for the batch)


async def flush_pending(session: AsyncSession) -> None:
    """Flush the session's ORM changes, if it has any: most use cases write with statements,
    and an empty flush still costs its unit-of-work setup."""
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
            except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                pass  # another replica created it first (caught by the catalog's index when
                # both were creating it at once)


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
