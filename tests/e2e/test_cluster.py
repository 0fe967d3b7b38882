"""Kafka as three nodes (``SHOP_KAFKA_BROKERS=3``): every partition on three replicas, and no
acknowledged write lost when the broker that leads the most partitions is killed, or when the
nodes are restarted one after another under a stream of writes.

Runs its own cluster on its own ports and folder, beside any other stack.
"""

import asyncio
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from schemas.topics import ALL_TOPICS, ORDERS_EVENTS, PAYMENTS_EVENTS, Topic
from tests.conftest import Infra, eventually
from tests.e2e.conftest import launcher
from tests.integration.conftest import read_to_end

pytestmark = pytest.mark.e2e

KAFKA_PORT = int(os.environ.get("SHOP_E2E_CLUSTER_KAFKA_PORT", 29492))
PG_PORT = int(os.environ.get("SHOP_E2E_CLUSTER_PG_PORT", 25536))
BOOTSTRAP = ",".join(f"127.0.0.1:{KAFKA_PORT + 2 * i}" for i in range(3))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "SHOP_STATE_DIR": str(tmp_path_factory.mktemp("cluster")),
        "SHOP_KAFKA_BROKERS": "3",
        "SHOP_KAFKA_PORT": str(KAFKA_PORT),
        "SHOP_KAFKA_CONTROLLER_PORT": str(KAFKA_PORT + 1),
        "SHOP_PG_PORT": str(PG_PORT),
    }
    env.pop("DATABASE_URL", None)
    up = launcher(env, "up", "--infra-only")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield env
    finally:
        down = launcher(env, "down")
        assert "kafka-3" in down.stdout + down.stderr


def stack(env: dict[str, str], *args: str) -> str:
    result = launcher(env, *args)
    assert result.returncode == 0, f"stack {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


async def _describe() -> tuple[int, list[dict[str, object]], dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        topics = await admin.describe_topics([topic.name for topic in ALL_TOPICS])
        [configs] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, ORDERS_EVENTS.name)]
        )
    finally:
        await admin.close()
    settings = {entry[0]: entry[1] for entry in configs.resources[0][4]}
    return len(cluster["brokers"]), topics, settings


def test_three_brokers_hold_every_partition_on_three_replicas(cluster: dict[str, str]) -> None:
    brokers, topics, settings = asyncio.run(_describe())
    assert brokers == 3
    assert {t["topic"] for t in topics} == {topic.name for topic in ALL_TOPICS}
    replicas = Counter(len(p["replicas"]) for t in topics for p in t["partitions"])  # type: ignore[attr-defined]
    assert set(replicas) == {3}, replicas
    assert settings["min.insync.replicas"] == "2"
    status = launcher(cluster, "status").stdout
    assert [line.split()[0] for line in status.splitlines()[1:4]] == [
        "kafka-1",
        "kafka-2",
        "kafka-3",
    ]
    assert all(" ready " in line for line in status.splitlines()[1:4]), status


class Writes:
    """A stream of idempotent ``acks=all`` writes to one topic in a thread of its own; what the
    cluster acknowledged, counted per value."""

    def __init__(self, topic: Topic) -> None:
        self.topic = topic
        self.acknowledged: list[bytes] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=BOOTSTRAP,
            enable_idempotence=True,
            acks="all",
            request_timeout_ms=30_000,
        )
        await producer.start()
        try:
            n = 0
            while not self._stop.is_set():
                value = f"write-{n}".encode()
                n += 1
                try:
                    await producer.send_and_wait(self.topic.name, value, key=str(n % 12).encode())
                except KafkaError:
                    self.failed += 1  # not acknowledged: the writer's own retry would send again
                else:
                    self.acknowledged.append(value)
                await asyncio.sleep(0.01)
        finally:
            await producer.stop()

    @contextmanager
    def running(self) -> Iterator["Writes"]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=60)


async def _leaders() -> Counter[int]:
    _, topics, _ = await _describe()
    return Counter(p["leader"] for t in topics for p in t["partitions"])  # type: ignore[attr-defined]


def _assert_nothing_lost_or_doubled(writes: Writes) -> None:
    assert len(writes.acknowledged) > 50, "too few writes to show anything"
    records = asyncio.run(read_to_end(Infra(BOOTSTRAP, database_url=""), writes.topic))
    found = Counter(record.value for record in records)
    missing = [value for value in writes.acknowledged if found[value] == 0]
    doubled = [value for value, count in found.items() if count > 1]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
    assert not doubled, f"{len(doubled)} writes doubled, e.g. {doubled[:3]}"


def test_killing_the_busiest_leader_loses_no_acknowledged_write(cluster: dict[str, str]) -> None:
    busiest, _ = asyncio.run(_leaders()).most_common(1)[0]
    with Writes(ORDERS_EVENTS).running() as writes:
        asyncio.run(asyncio.sleep(2))
        stack(cluster, "stop", f"kafka-{busiest}", "--kill")
        # its partitions have no leader until the controllers fence it, a broker session
        # (broker.session.timeout.ms, 9 s) after its last heartbeat
        killed_at = len(writes.acknowledged)
        assert asyncio.run(
            eventually(lambda: len(writes.acknowledged) > killed_at + 20, timeout_s=45)
        )
        assert busiest not in asyncio.run(_leaders())
        assert "catching up" in stack(cluster, "start", f"kafka-{busiest}")
    _assert_nothing_lost_or_doubled(writes)


def test_a_rolling_restart_loses_no_acknowledged_write(cluster: dict[str, str]) -> None:
    with Writes(PAYMENTS_EVENTS).running() as writes:
        for node in ("kafka-1", "kafka-2", "kafka-3"):
            out = stack(cluster, "restart", node)
            assert re.search(rf"{node} +stopped", out) and "catching up" in out, out
    _assert_nothing_lost_or_doubled(writes)
    status = launcher(cluster, "status").stdout.splitlines()[1:4]
    assert all(" ready " in line for line in status), status


def test_node_folders_are_the_nodes_own(cluster: dict[str, str]) -> None:
    state = Path(cluster["SHOP_STATE_DIR"])
    metas = [(state / f"kafka-{i}" / "data" / "meta.properties").read_text() for i in (1, 2, 3)]
    ids = {meta.split("cluster.id=")[1].split()[0] for meta in metas}
    assert len(ids) == 1, ids
