"""Real infrastructure for the tests: a Kafka broker and a PostgreSQL server, once per session.

Where a Docker engine answers, testcontainers runs both; otherwise the local launcher starts them
as processes, on their own ports and in a fresh folder, so a running ``make up`` stack is left
alone. Either way the tests talk to a real broker and a real database.

To run several test sessions at once, give each its own ``SHOP_TEST_STATE_DIR``,
``SHOP_TEST_KAFKA_PORT``, ``SHOP_TEST_KAFKA_CONTROLLER_PORT`` and ``SHOP_TEST_PG_PORT``.
"""

import asyncio
import contextlib
import inspect
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiokafka import ConsumerRecord

from common.kafka_access import KafkaAccess
from stack import kafka_admin, kafka_process, postgres
from stack.config import ROOT, StackConfig


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap: str
    database_url: str
    """A SQLAlchemy URL of the server; each test picks its own database names on it."""

    @property
    def kafka_access(self) -> KafkaAccess:
        return KafkaAccess(self.kafka_bootstrap)


def consumer_record(
    topic: str,
    value: bytes | None,
    *,
    partition: int = 0,
    offset: int = 0,
    key: bytes | None = b"k",
    headers: tuple[tuple[str, bytes | None], ...] = (),
) -> ConsumerRecord[bytes, bytes]:
    """A record as aiokafka hands it to a consumer, for tests that hand a consumer records."""
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=headers,
    )


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=1).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    if os.environ.get("SHOP_TEST_INFRA", "auto") != "local" and _docker_answers():
        yield from _containers()
    else:
        yield from _local_processes()


def _containers() -> Iterator[Infra]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with (
        KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as broker,
        PostgresContainer("postgres:16", driver="psycopg") as db,
    ):
        bootstrap = broker.get_bootstrap_server()
        asyncio.run(kafka_admin.ensure_topics(KafkaAccess(bootstrap)))
        yield Infra(bootstrap, db.get_connection_url())


def _local_processes() -> Iterator[Infra]:
    config = StackConfig(
        state_dir=Path(os.environ.get("SHOP_TEST_STATE_DIR", ROOT / ".cache" / "test-stack")),
        kafka_port=int(os.environ.get("SHOP_TEST_KAFKA_PORT", 19092)),
        kafka_controller_port=int(os.environ.get("SHOP_TEST_KAFKA_CONTROLLER_PORT", 19093)),
        kafka_heap="384m",
        pg_port=int(os.environ.get("SHOP_TEST_PG_PORT", 25433)),
    )
    kafka_process.stop(config)
    postgres.stop(config)
    shutil.rmtree(config.state_dir, ignore_errors=True)
    try:
        kafka_process.start(config)
        asyncio.run(kafka_admin.wait_ready(config.kafka_access()))
        asyncio.run(kafka_admin.ensure_topics(config.kafka_access()))
        postgres.start(config)
        yield Infra(
            config.kafka_bootstrap,
            f"postgresql+psycopg://postgres@127.0.0.1:{config.pg_port}/postgres",
        )
    finally:
        kafka_process.stop(config)
        postgres.stop(config)


@contextlib.asynccontextmanager
async def http_server(
    answer: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A real HTTP server on a free loopback port that answers every GET with ``answer``;
    yields its base URL."""
    app = web.Application()
    app.router.add_get("/{path:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def eventually(
    check: Callable[[], Awaitable[Any] | Any], *, timeout_s: float = 20.0, interval_s: float = 0.1
) -> Any:
    """Wait until ``check()`` (sync or async) is truthy; fail with its last value at the end."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s}s (last value: {value!r})")
        await asyncio.sleep(interval_s)
