"""What the machine does without the shop: PostgreSQL under pgbench, Kafka under its own perf
tools and a bare aiokafka loop, and a FastAPI endpoint that does nothing."""

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError
from sqlalchemy.engine import make_url

from bench import perftools
from bench.http_load import ReadFigures, closed_loop
from bench.options import Options
from bench.probes import server_url
from stack.config import ROOT, StackConfig
from stack.postgres import POSTGRES_BIN_PATH
from stack.progress import step

PGBENCH_DATABASE = "bench_pgbench"
PERF_TOPIC = "bench.perf"
PERF_PARTITIONS = 6
"""As many as the shop's topics."""

_TPS = re.compile(r"^tps = (?P<tps>[\d.]+) \(without initial connection time\)", re.MULTILINE)
_LATENCY = re.compile(r"^latency average = (?P<ms>[\d.]+) ms", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (?P<n>\d+)", re.MULTILINE)


@dataclass(frozen=True)
class PgbenchFigures:
    tps: float
    latency_avg_ms: float | None
    failed: int
    clients: int
    seconds: int


def parse_pgbench_output(text: str, *, clients: int, seconds: int) -> PgbenchFigures:
    tps = _TPS.search(text)
    if tps is None:
        raise ValueError(f"no tps in pgbench's output:\n{text[-2000:]}")
    latency = _LATENCY.search(text)
    failed = _FAILED.search(text)
    return PgbenchFigures(
        tps=float(tps["tps"]),
        latency_avg_ms=float(latency["ms"]) if latency else None,
        failed=int(failed["n"]) if failed else 0,
        clients=clients,
        seconds=seconds,
    )


def pgbench(config: StackConfig, *, clients: int = 8, seconds: int = 20) -> PgbenchFigures:
    """``pgbench -N`` (simple updates) on its own database of the same server. Over TCP as the
    ``postgres`` user: the server runs as another system user than root."""
    url = make_url(server_url(config))
    with psycopg.connect(server_url(config), autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (PGBENCH_DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{PGBENCH_DATABASE}"')
    connection = [
        "-h",
        url.host or "127.0.0.1",
        "-p",
        str(url.port or 5432),
        "-U",
        url.username or "postgres",
    ]
    env = {**os.environ, **({"PGPASSWORD": url.password} if url.password else {})}
    pgbench_bin = str(POSTGRES_BIN_PATH / "pgbench")
    step("pgbench", f"initialising {PGBENCH_DATABASE} (scale 1)...")
    subprocess.run(
        [pgbench_bin, "-i", "-q", *connection, PGBENCH_DATABASE],
        check=True,
        capture_output=True,
        env=env,
    )
    step("pgbench", f"-N, {clients} clients, {seconds}s...")
    result = subprocess.run(
        [
            pgbench_bin,
            "-N",
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(seconds),
            *connection,
            PGBENCH_DATABASE,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pgbench exited {result.returncode}: {result.stderr[-2000:]}")
    return parse_pgbench_output(result.stdout, clients=clients, seconds=seconds)


async def recreate_perf_topic(bootstrap: str) -> None:
    """A fresh ``bench.perf`` each run, so the consumers read exactly what the producer wrote
    and the topic does not grow from run to run."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        await drop_perf_topic_with(admin)
        deadline = time.monotonic() + 60
        while True:
            try:
                await admin.create_topics(
                    [NewTopic(PERF_TOPIC, num_partitions=PERF_PARTITIONS, replication_factor=1)]
                )
                return
            except TopicAlreadyExistsError:  # its deletion is still under way
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def drop_perf_topic_with(admin: AIOKafkaAdminClient) -> None:
    if PERF_TOPIC in await admin.list_topics():
        try:
            await admin.delete_topics([PERF_TOPIC])
        except UnknownTopicOrPartitionError:
            pass


async def drop_perf_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        await drop_perf_topic_with(admin)
    finally:
        await admin.close()


@dataclass(frozen=True)
class RawConsumeFigures:
    records: int
    mb: float
    seconds: float
    records_per_s: float


async def raw_consume(bootstrap: str, records: int, max_records: int = 500) -> RawConsumeFigures:
    """Read ``records`` from the start of ``bench.perf`` with aiokafka's ``getmany``, batches of
    ``max_records`` as the services take them, touching nothing: the ceiling of a Python
    consumer on this machine."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(PERF_TOPIC, p) for p in range(PERF_PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        for tp in partitions:
            await consumer.position(tp)
        count = size = 0
        started = time.perf_counter()
        deadline = time.monotonic() + 120
        while count < records and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            for messages in batch.values():
                count += len(messages)
                size += sum(len(message.value or b"") for message in messages)
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
    return RawConsumeFigures(
        records=count,
        mb=round(size / 1e6, 2),
        seconds=round(seconds, 3),
        records_per_s=round(count / seconds, 1),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def trivial_endpoint(*, concurrency: int, visitors: int, seconds: float) -> ReadFigures:
    """The tiny app of :mod:`bench.trivial` in its own uvicorn process, under the same client
    concurrency and visitors as the gateway's reads."""
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.trivial",
        str(port),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=base, timeout=2) as http:
            while True:
                try:
                    if (await http.get("/ping")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError("the trivial endpoint did not start")
                await asyncio.sleep(0.1)
        return await closed_loop(
            base, "/ping", concurrency=concurrency, duration_s=seconds, visitors=visitors
        )
    finally:
        server.terminate()
        try:
            await asyncio.wait_for(server.wait(), 10)
        except TimeoutError:
            server.kill()
            await server.wait()


@dataclass
class Baselines:
    pgbench: PgbenchFigures | None = None
    kafka_producer: perftools.ProducerFigures | None = None
    kafka_consumer: perftools.ConsumerFigures | None = None
    raw_consumer: RawConsumeFigures | None = None
    trivial_endpoint: ReadFigures | None = None
    errors: dict[str, str] = field(default_factory=dict)


def run_all(config: StackConfig, options: Options) -> Baselines:
    """Every baseline in turn; one that fails is recorded as such and the others still run."""
    found = Baselines()
    try:
        found.pgbench = pgbench(config, clients=options.pgbench_clients, seconds=options.pgbench_s)
        step("pgbench", f"{found.pgbench.tps:,.0f} TPS")
    except (RuntimeError, OSError, subprocess.CalledProcessError, ValueError) as exc:
        found.errors["pgbench"] = str(exc)
        step("pgbench", f"failed: {exc}")
    bootstrap = config.kafka_bootstrap
    try:
        if config.scram:  # Kafka's perf tools here speak plaintext only
            raise RuntimeError("Kafka's baselines are measured on the plaintext stack only")
        asyncio.run(recreate_perf_topic(bootstrap))
        step("kafka perf", f"ProducerPerformance: {options.perf_records:,} x 500 B...")
        found.kafka_producer = perftools.producer_performance(
            config.jars_dir,
            bootstrap,
            PERF_TOPIC,
            options.perf_records,
            options.perf_record_size,
        )
        step("kafka perf", f"produced {found.kafka_producer.records_per_s:,.0f} records/s")
        found.kafka_consumer = perftools.consumer_performance(
            config.jars_dir, bootstrap, PERF_TOPIC, options.perf_records
        )
        step(
            "kafka perf",
            f"ConsumerPerformance: {found.kafka_consumer.fetch_records_per_s:,.0f} records/s",
        )
        found.raw_consumer = asyncio.run(raw_consume(bootstrap, options.perf_records))
        step("kafka perf", f"aiokafka getmany loop: {found.raw_consumer.records_per_s:,.0f}/s")
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError, KafkaError) as exc:
        found.errors["kafka"] = str(exc)
        step("kafka perf", f"failed: {exc}")
    finally:
        with contextlib.suppress(Exception):
            asyncio.run(drop_perf_topic(bootstrap))
    try:
        found.trivial_endpoint = asyncio.run(
            trivial_endpoint(
                concurrency=options.read_concurrency,
                visitors=options.read_visitors,
                seconds=options.read_s,
            )
        )
        step("trivial http", f"{found.trivial_endpoint.per_s:,.0f} requests/s")
    except (RuntimeError, OSError, httpx.HTTPError) as exc:
        found.errors["trivial_endpoint"] = str(exc)
        step("trivial http", f"failed: {exc}")
    return found
