"""common.statements' statements run straight on psycopg, inside the session's transaction,
and common.unit_of_work's begin() in its three modes."""

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    Integer,
    String,
    Uuid,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import ReadPool, create_engine, ensure_database, libpq_url
from common.statements import (
    Direct,
    InsertRows,
    UpdateRows,
    any_of,
    array_rows,
    defer_insert,
    table_of,
)
from common.unit_of_work import SessionMaker, create_sessionmaker, driver_connection
from tests.conftest import Infra, unique

pytestmark = pytest.mark.integration


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "rows"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    name: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="new")
    rank: Mapped[int] = mapped_column(Integer, server_default="7")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Entry(Base):
    __tablename__ = "entries"

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    id: Mapped[UUID] = mapped_column(unique=True, default=uuid4)
    name: Mapped[str] = mapped_column(String(50))
    note: Mapped[str | None] = mapped_column(String(50))
    at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


ROWS = table_of(Row)
_SET_ROWS = UpdateRows(ROWS, match="id")
ENTRIES = table_of(Entry)
_ADD_ENTRIES = InsertRows(
    ENTRIES, sql_values={"at": func.clock_timestamp()}, skip_conflicts_on=["id"]
)
_ADD = Direct(insert(ROWS).returning(ROWS.c.id, ROWS.c.name))
_NAMES = Direct(select(ROWS.c.name, ROWS.c.status, ROWS.c.rank).where(any_of(ROWS.c.id, "ids")))
_RENAME = Direct(update(ROWS).where(ROWS.c.id == bindparam("target")).values(name="renamed"))


@pytest.fixture
async def sessionmaker(infra: Infra) -> AsyncIterator[SessionMaker]:
    url = make_url(infra.database_url).set(database=unique("direct")).render_as_string(False)
    await ensure_database(url)
    engine = create_engine(url, pool_size=1)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def test_an_insert_gets_its_python_and_server_defaults_in_the_sessions_transaction(
    sessionmaker: SessionMaker,
) -> None:
    async with sessionmaker.begin() as session:
        added = await _ADD.rows_many(
            session, [{"name": "a"}, {"name": "c"}, {"name": "b", "status": "old"}]
        )
        # the session sees what was written on its connection: the same transaction
        found = (await session.execute(select(Row.id, Row.name).order_by(Row.name))).all()
        rows = await _NAMES.rows(session, {"ids": [row.id for row in found]})

    assert [row.name for row in added] == ["a", "c", "b"]  # what each returned, in order
    assert sorted(added) == sorted((row.id, row.name) for row in found)
    assert len({row.id for row in found}) == 3
    assert sorted((row.name, row.status, row.rank) for row in rows) == [
        ("a", "new", 7),
        ("b", "old", 7),
        ("c", "new", 7),
    ]


async def test_statements_roll_back_with_the_session(sessionmaker: SessionMaker) -> None:
    async with sessionmaker.begin() as session:
        await _ADD.execute(session, {"name": "kept", "id": (kept := uuid4())})

    with pytest.raises(RuntimeError):
        async with sessionmaker.begin() as session:
            await _ADD.execute(session, {"name": "gone", "id": (gone := uuid4())})
            await _RENAME.execute(session, {"target": kept})
            raise RuntimeError("the use case failed")

    async with sessionmaker() as session:
        names = await _NAMES.scalars(session, {"ids": [kept, gone]})
    assert names == ["kept"]


async def test_deferred_rows_commit_with_their_unit_or_roll_it_back_whole(
    sessionmaker: SessionMaker,
) -> None:
    # The deferred inserts and COMMIT go in one pipeline; the pool has one connection, so each
    # unit below runs on the connection the one before left.
    async with sessionmaker.begin() as session:
        await _ADD.execute(session, {"name": "direct", "id": (direct := uuid4())})
        defer_insert(session, ROWS, {"name": "deferred", "id": (deferred := uuid4())})

    with pytest.raises(psycopg.errors.UniqueViolation):
        async with sessionmaker.begin() as session:
            await _RENAME.execute(session, {"target": direct})
            defer_insert(session, ROWS, {"name": "new", "id": (new := uuid4())})
            defer_insert(session, ROWS, {"name": "taken", "id": deferred})  # fails at commit

    async with sessionmaker.begin() as session:
        names = await _NAMES.scalars(session, {"ids": [direct, deferred, new]})
        defer_insert(session, ROWS, {"name": "after", "id": (after := uuid4())})
    async with sessionmaker() as session:
        later = await _NAMES.scalars(session, {"ids": [after]})
    assert sorted(names) == ["deferred", "direct"]  # the failed unit left nothing, not the rename
    assert later == ["after"]


async def test_deferred_rows_and_the_commit_take_one_round_trip(
    sessionmaker: SessionMaker, tmp_path: Path
) -> None:
    trace = tmp_path / "libpq.trace"
    with trace.open("w") as out:
        async with sessionmaker.begin() as session:
            driver = await driver_connection(session)
            driver.pgconn.trace(out.fileno())
            driver.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            await _RENAME.execute(session, {"target": uuid4()})  # BEGIN, then the statement
            defer_insert(session, ROWS, {"name": "row"})
            defer_insert(session, ENTRIES, {"name": "entry"})
        driver.pgconn.untrace()

    answers = [line for line in trace.read_text().splitlines() if "ReadyForQuery" in line]
    # BEGIN, the update, then both inserts and COMMIT together: one answer each, not five
    assert len(answers) == 3
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Entry)) == 1


def test_a_list_expanded_into_the_sql_is_refused() -> None:
    expanded = Direct(select(ROWS.c.name).where(ROWS.c.id.in_([uuid4(), uuid4()])))
    with pytest.raises(ValueError, match="any_of"):
        expanded._compile({})


async def test_insert_rows_writes_a_list_in_order_with_defaults_sql_values_and_skipped_conflicts(
    sessionmaker: SessionMaker,
) -> None:
    taken = uuid4()
    async with sessionmaker.begin() as session:
        await _ADD_ENTRIES.execute(session, [{"name": "first", "id": taken}])
        await _ADD_ENTRIES.execute(
            session,
            [
                *({"name": f"n{index}"} for index in range(5)),
                {"name": "with a note", "note": "kept"},
                {"name": "again", "id": taken},  # conflicts: the first row stays
                {"name": "last"},
            ],
        )
        rows = (await session.execute(select(Entry).order_by(Entry.seq))).scalars().all()

    assert [row.name for row in rows] == [
        "first",
        *(f"n{index}" for index in range(5)),
        "with a note",
        "last",
    ]
    assert [row.note for row in rows].count("kept") == 1
    assert len({row.id for row in rows}) == len(rows)
    stamps = [row.at for row in rows if row.at is not None]
    assert len(stamps) == len(rows) and stamps[1:6] == sorted(stamps[1:6])


async def test_update_rows_gives_each_row_its_own_values_with_one_statement(
    sessionmaker: SessionMaker,
) -> None:
    ids = [uuid4() for _ in range(4)]
    async with sessionmaker.begin() as session:
        await _ADD.rows_many(session, [{"id": id_, "name": f"r{i}"} for i, id_ in enumerate(ids)])
        await _SET_ROWS.execute(
            session,
            [
                {"id": ids[0], "status": "done", "rank": 1},
                {"id": ids[2], "status": "late", "rank": 3},
                {"id": ids[3], "name": "renamed"},  # another set of columns: another statement
            ],
        )
        rows = await _NAMES.rows(session, {"ids": ids})

    assert sorted(rows) == sorted(
        [("r0", "done", 1), ("r1", "new", 7), ("r2", "late", 3), ("renamed", "new", 7)]
    )


_ADD_MANY = Direct(
    insert(ROWS)
    .from_select(["id", "name"], select(array_rows({"id": Uuid, "name": String}, name="new")))
    .returning(ROWS.c.id, ROWS.c.name)
)


async def test_a_transaction_begun_with_its_first_statement_takes_one_round_trip_less(
    sessionmaker: SessionMaker, tmp_path: Path
) -> None:
    async with sessionmaker() as session:  # the pool's one connection, to trace it
        driver = await driver_connection(session)
    names = ["plain", "O'Brien", "x'); DROP TABLE rows; --", 'é \\ " {}']  # bound as values
    ids = [uuid4() for _ in names]
    trace = tmp_path / "libpq.trace"
    with trace.open("w") as out:
        driver.pgconn.trace(out.fileno())
        driver.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        async with sessionmaker.begin() as session:
            added = await _ADD_MANY.rows_beginning(session, {"id": ids, "name": names})
            defer_insert(session, ENTRIES, {"name": "entry"})
        driver.pgconn.untrace()

    answers = [line for line in trace.read_text().splitlines() if "ReadyForQuery" in line]
    # BEGIN and the insert together, then the deferred insert and COMMIT together: not three
    assert len(answers) == 2
    assert [(row.id, row.name) for row in added] == list(zip(ids, names, strict=True))
    async with sessionmaker() as session:
        assert sorted(await _NAMES.scalars(session, {"ids": ids})) == sorted(names)
        assert await session.scalar(select(func.count()).select_from(Entry)) == 1


async def test_a_transaction_begun_with_its_first_statement_rolls_it_back_and_the_next_is_one(
    sessionmaker: SessionMaker,
) -> None:
    with pytest.raises(RuntimeError):
        async with sessionmaker.begin() as session:
            await _ADD_MANY.rows_beginning(session, {"id": [gone := uuid4()], "name": ["gone"]})
            await _RENAME.execute(session, {"target": gone})
            raise RuntimeError("the use case failed")
    # the pool's one connection is back out of autocommit: the next unit is a transaction too
    with pytest.raises(RuntimeError):
        async with sessionmaker.begin() as session:
            await _ADD.execute(session, {"name": "also gone", "id": (also := uuid4())})
            assert (await driver_connection(session)).autocommit is False
            raise RuntimeError("the use case failed")
    # a session that already holds its connection runs the statement as rows() does
    async with sessionmaker.begin() as session:
        await _ADD.execute(session, {"name": "first", "id": (first := uuid4())})
        await _ADD_MANY.rows_beginning(session, {"id": [second := uuid4()], "name": ["second"]})

    async with sessionmaker() as session:
        names = await _NAMES.scalars(session, {"ids": [gone, also, first, second]})
    assert sorted(names) == ["first", "second"]


async def test_a_hot_read_runs_on_the_read_pool_in_autocommit_and_survives_a_dropped_connection(
    sessionmaker: SessionMaker,
) -> None:
    async with sessionmaker.begin() as session:
        (added,) = await _ADD.rows_many(session, [{"name": "pooled"}])
    url = sessionmaker.kw["bind"].url.render_as_string(False)
    pool = ReadPool(url, size=1)
    await pool.open()
    try:
        rows = await _NAMES.rows_read(pool, {"ids": [added.id]})
        assert [(row.name, row.status) for row in rows] == [("pooled", "new")]
        async with pool.connection() as connection:
            # autocommit: nothing is left open between reads
            assert connection.info.transaction_status == pq.TransactionStatus.IDLE
            backend = connection.info.backend_pid
        async with await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        # the pool's only connection is dead: the read finds out, and is tried on a new one
        rows = await _NAMES.rows_read(pool, {"ids": [added.id]})
        assert [row.name for row in rows] == ["pooled"]
        async with pool.connection() as connection:
            assert connection.info.backend_pid != backend
    finally:
        await pool.close()
