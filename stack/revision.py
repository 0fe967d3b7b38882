"""``python -m stack revision SERVICE -m MESSAGE``: autogenerate a service's next migration.

Compares the service's models with a scratch database migrated to head, on the local server,
and writes the new revision into ``SERVICE/migrations/``. Read it before committing it.
"""

import asyncio
import importlib
from pathlib import Path

import psycopg
from alembic import command
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from common.db import alembic_config, migrate
from stack.config import ROOT, StackConfig


async def autogenerate(config: StackConfig, service: str, message: str) -> None:
    metadata: MetaData = importlib.import_module(f"{service}.models").Base.metadata
    versions = ROOT / service / "migrations"
    versions.mkdir(exist_ok=True)
    scratch = f"{service}_autogenerate"
    admin_url = f"postgresql://postgres@127.0.0.1:{config.pg_port}/postgres"
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}"')
        await admin.execute(f'CREATE DATABASE "{scratch}"')
    engine = create_async_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{config.pg_port}/{scratch}"
    )
    try:
        await migrate(engine, versions, metadata)

        def revise(connection: Connection) -> None:
            cfg = alembic_config(versions, metadata, connection)
            command.revision(cfg, message=message, autogenerate=True, version_path=str(versions))

        async with engine.begin() as conn:
            await conn.run_sync(revise)
    finally:
        await engine.dispose()
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}"')


def revise(service: str, message: str) -> None:
    if not (ROOT / service / "models.py").exists():
        raise SystemExit(f"{service} has no models.py")
    asyncio.run(autogenerate(StackConfig(), service, message))
    print(f"new revision in {Path(service) / 'migrations'}")
