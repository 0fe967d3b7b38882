"""A single-node Apache Kafka (KRaft, broker and controller in one process) from its jars."""

import asyncio
import hashlib
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.topics import (
    ALL_TOPICS,
    RETENTION_HOURS,
    SEGMENT_ROLL_HOURS,
    Topic,
)
from stack import procs
from stack.config import ROOT, StackConfig
from stack.progress import step

NAME = "kafka"
POM = ROOT / "stack" / "kafka" / "pom.xml"
LOG4J = ROOT / "stack" / "kafka" / "log4j2.xml"
MAIN = "kafka.Kafka"


def ensure_jars(config: StackConfig) -> Path:
    """Resolve the broker's jars from Maven Central into ``jars_dir``, once per pom."""
    libs = config.jars_dir
    stamp = libs / ".pom-sha256"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return libs
    if shutil.which("mvn") is None:
        raise SystemExit(
            "Maven (mvn) is needed once to fetch the Kafka jars: apt-get install maven"
        )
    step(NAME, "fetching the broker jars from Maven Central (first run only)...")
    if libs.exists():
        shutil.rmtree(libs)
    subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        check=True,
    )
    stamp.write_text(digest)
    step(NAME, f"{sum(1 for _ in libs.glob('*.jar'))} jars in {libs}")
    return libs


def _java(config: StackConfig, *args: str, heap: str = "256m") -> list[str]:
    return [
        "java",
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J}",
        "-cp",
        f"{config.jars_dir}/*",
        *args,
    ]


def _properties(config: StackConfig) -> Path:
    data = config.kafka_dir / "data"
    path = config.kafka_dir / "server.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers=127.0.0.1:{config.kafka_controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{config.kafka_port},"
                f"CONTROLLER://127.0.0.1:{config.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{config.kafka_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={data}",
                "num.partitions=6",
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=6",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                f"log.retention.hours={RETENTION_HOURS}",
                f"log.roll.hours={SEGMENT_ROLL_HOURS}",
                "num.network.threads=2",
                "num.io.threads=4",
                "",
            ]
        )
    )
    return path


def _format_storage(config: StackConfig, properties: Path) -> None:
    if (config.kafka_dir / "data" / "meta.properties").exists():
        return
    step(NAME, "formatting storage (first start)...")
    cluster_id = (
        subprocess.run(
            _java(config, "kafka.tools.StorageTool", "random-uuid"),
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    subprocess.run(
        _java(
            config,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(properties),
            "--standalone",
            "--ignore-formatted",
        ),
        check=True,
        capture_output=True,
        text=True,
    )


def start(config: StackConfig) -> None:
    if procs.running_pid(config, NAME) is not None:
        step(NAME, f"already running on {config.kafka_bootstrap}")
        return
    ensure_jars(config)
    properties = _properties(config)
    _format_storage(config, properties)
    log = procs.log_file(config, NAME)
    offset = log.stat().st_size if log.exists() else 0
    pid = procs.start(
        config,
        NAME,
        _java(config, MAIN, str(properties), heap=config.kafka_heap),
        marker=str(properties),
    )
    step(NAME, f"starting on {config.kafka_bootstrap} (log {log})...")
    _wait_for_log_line(pid, log, offset, "Kafka Server started", timeout_s=120)


def _wait_for_log_line(pid: int, log: Path, offset: int, line: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with log.open("rb") as f:
            f.seek(offset)
            if line.encode() in f.read():
                return
        if not procs.alive(pid):
            raise SystemExit(f"Kafka exited while starting; see {log}")
        time.sleep(0.2)
    raise SystemExit(f"Kafka did not start within {timeout_s:.0f}s; see {log}")


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    return admin


async def wait_ready(bootstrap: str, timeout_s: float = 60) -> None:
    """Ready means the broker answers a metadata request, not merely that its port is open."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = await _admin(bootstrap)
            try:
                await admin.describe_cluster()
                return
            finally:
                await admin.close()
        except (KafkaError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def ensure_topics(bootstrap: str, topics: Iterable[Topic] = ALL_TOPICS) -> int:
    """Create the missing topics; returns how many were created."""
    admin = await _admin(bootstrap)
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(topic.name, num_partitions=topic.partitions, replication_factor=1)
            for topic in topics
            if topic.name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
        return len(missing)
    finally:
        await admin.close()


async def is_ready(bootstrap: str) -> bool:
    try:
        await asyncio.wait_for(wait_ready(bootstrap, timeout_s=0), 5)
    except (KafkaError, OSError, TimeoutError):
        return False
    return True


def shift_offsets(config: StackConfig, group: str, by: int) -> str:
    """Move an inactive consumer group's offsets on all its topics by ``by`` (negative: rewind),
    with Kafka's own ConsumerGroupCommand. Its members must be stopped first."""
    result = subprocess.run(
        _java(
            config,
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            "--bootstrap-server",
            config.kafka_bootstrap,
            "--group",
            group,
            "--reset-offsets",
            "--all-topics",
            "--shift-by",
            str(by),
            "--execute",
        ),
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def stop(config: StackConfig) -> bool:
    return procs.stop(config, NAME, grace_s=30)
