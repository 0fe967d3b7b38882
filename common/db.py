"""The database: the engine, the read pool, creating a service's database, and its migrations.

Each service owns one PostgreSQL database and applies its own Alembic migrations on start, one
replica at a time (an advisory lock), so that replicas started together need no coordination.
"""

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_ENV_DIR = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x5E0B_0001
"""Advisory lock id: replicas starting together apply migrations one at a time."""


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    # No pre-ping: it doubled the round trips of every transaction. A connection that died with
    # its server fails its next use, the pool drops it, and the work is retried or redelivered.
    return create_async_engine(url, pool_size=pool_size, max_overflow=10)


class ReadPool:
    """psycopg connections of the service's own, in autocommit, for the hot reads of its HTTP
    routes (:meth:`Direct.rows_read`), which skip a session's checkout and close. They are
    opened as they are needed, up to ``size``; a broken one is dropped."""

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
