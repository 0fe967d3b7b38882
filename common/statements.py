"""Statements run straight on psycopg inside the session's transaction: :class:`Direct` (one
compiled statement), :class:`InsertRows` and :class:`UpdateRows` (many rows with one statement),
:func:`defer_insert`; :meth:`Direct.rows_read` for an HTTP route's hot read.

SQLAlchemy's execution layer cost about as much client CPU as the statements themselves; these
compile a statement once and hand psycopg the SQL and its values (bench/HISTORY.md has the
figures). Lists are bound as one array per column, so a statement's text does not depend on
how many values it carries.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import namedtuple_row
from sqlalchemy import ColumnElement, Table, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import TableValuedAlias

from common.db import ReadPool
from common.unit_of_work import driver_connection, unit_of

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
    statement is built once, as a module constant, whatever the number of values."""
    return column == any_(bindparam(name, type_=ARRAY(column.type)))


class Direct:
    """A hot statement compiled once for psycopg and run straight on the session's own
    connection, inside the session's transaction: the same SQL, without SQLAlchemy's execution
    layer.

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
        goes in one query string with it, one round trip instead of two.

        The connection is taken in autocommit, so that psycopg sends no ``BEGIN`` of its own;
        the session's commit or rollback ends the transaction as usual, and the pool puts the
        connection back out of autocommit. The values are bound on the client (a query string
        of two statements takes no parameters): for ids, names and numbers. When the session
        already holds a connection, this is :meth:`rows`."""
        if unit_of(session).driver is not None or session.in_nested_transaction():
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


class InsertRows:
    """Inserts a list of rows into one table with one statement, the rows bound as one array per
    column (``INSERT ... SELECT ... FROM unnest(...)``), in list order, on psycopg inside the
    session's transaction: the server runs one statement, not one per row.

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
    unit_of(session).deferred.append((_insert_into(into), row))


_inserts: dict[Table, InsertRows] = {}


def _insert_into(into: Table | InsertRows) -> InsertRows:
    if isinstance(into, InsertRows):
        return into
    if into not in _inserts:
        _inserts[into] = InsertRows(into)
    return _inserts[into]
