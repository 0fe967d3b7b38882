"""Database plumbing: the async engine, sessions, creating a service's database, migrations."""

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionMaker = async_sessionmaker[AsyncSession]

_ENV_DIR = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x5E0B_0001
"""Advisory lock id: replicas starting together apply migrations one at a time."""


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    # No pre-ping: it doubled the round trips of every transaction. A connection that died with
    # its server fails its next use, the pool drops it, and the work is retried or redelivered.
    return create_async_engine(url, pool_size=pool_size, max_overflow=10)


_batch_session: ContextVar[AsyncSession | None] = ContextVar("batch_session", default=None)


class BatchingSessionMaker(async_sessionmaker[AsyncSession]):
    """A sessionmaker whose ``begin()`` joins the consumer's batch transaction when one is open
    (see :func:`batch_transaction`): the use case then runs in a savepoint of it, so it still
    commits or rolls back as a whole, and the batch reaches the disk with one commit."""

    def begin(self) -> AbstractAsyncContextManager[AsyncSession]:  # type: ignore[override]
        shared = _batch_session.get()
        if shared is None:
            return super().begin()
        return _savepoint(shared)


@asynccontextmanager
async def _savepoint(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    async with session.begin_nested():
        yield session


@asynccontextmanager
async def batch_transaction(sessionmaker: SessionMaker) -> AsyncIterator[AsyncSession]:
    """One transaction for a batch of messages; each use case inside runs in a savepoint."""
    async with sessionmaker.begin() as session:
        token = _batch_session.set(session)
        try:
            yield session
        finally:
            _batch_session.reset(token)


def create_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    return BatchingSessionMaker(engine, expire_on_commit=False)


async def ensure_database(url: str) -> None:
    """Create the database named in ``url`` when its server does not have it yet."""
    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    async with await psycopg.AsyncConnection.connect(
        admin.render_as_string(hide_password=False), autocommit=True
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
