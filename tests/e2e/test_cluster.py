"""Kafka as production runs it, on this machine: three nodes (``SHOP_KAFKA_BROKERS=3``), every
partition on three replicas, SASL/SCRAM with an ACL per service (``SHOP_KAFKA_SECURITY=scram``),
and the whole shop on it with two processes of each service (``SHOP_REPLICAS=2``). No
acknowledged write is lost when the broker that leads the most partitions is killed, or when
the nodes are restarted one after another under a stream of writes; orders are paid with one
process of each service killed.

Runs its own shop on its own ports and folder, beside any other stack.
"""

import asyncio
import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from common.kafka_access import KafkaAccess
from schemas.topics import ALL_TOPICS, CONSUMED_TOPICS, ORDERS_EVENTS, Topic
from stack import kafka_admin, kafka_tools
from stack.kafka_acls import PRINCIPALS
from tests.conftest import eventually
from tests.e2e.conftest import (
    Client,
    Shop,
    launcher,
    new_product,
    order_body,
    stack_up,
)
from tests.e2e.test_stack import our_processes
from tests.integration.conftest import read_to_end

pytestmark = pytest.mark.e2e

KAFKA_PORT = int(os.environ.get("SHOP_E2E_CLUSTER_KAFKA_PORT", 29492))
PG_PORT = int(os.environ.get("SHOP_E2E_CLUSTER_PG_PORT", 25536))
OFFSET = int(os.environ.get("SHOP_E2E_CLUSTER_HTTP_PORT_OFFSET", 1500))
"""Its second processes take the ports plus 100: clear of the other test stacks' (100 to 700)."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    state = tmp_path_factory.mktemp("cluster")
    with stack_up(
        state,
        kafka_port=KAFKA_PORT,
        pg_port=PG_PORT,
        offset=OFFSET,
        SHOP_KAFKA_BROKERS="3",
        SHOP_KAFKA_SECURITY="scram",
        SHOP_REPLICAS="2",
    ) as shop:
        yield shop
    left = our_processes(str(state))
    assert not left, f"processes left after down: {left}"


def stack(shop: Shop, *args: str) -> str:
    result = launcher(shop.env, *args)
    assert result.returncode == 0, f"stack {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def kcat(*args: str, config: str | None = None, send: str = "") -> subprocess.CompletedProcess[str]:
    flags = ["-F", config] if config else []
    return subprocess.run(
        ["kcat", *flags, *args], capture_output=True, text=True, timeout=60, input=send
    )


def kcat_config(shop: Shop, principal: str) -> str:
    path = Path(shop.env["SHOP_STATE_DIR"]) / f"kcat-{principal}.conf"
    path.write_text(kafka_tools.kcat_conf(shop.config, principal))
    return str(path)


async def _describe(access: KafkaAccess) -> tuple[int, list[dict[str, object]], dict[str, str]]:
    admin = AIOKafkaAdminClient(**access.client_options())
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


def test_three_brokers_hold_every_partition_on_three_replicas(cluster: Shop) -> None:
    brokers, topics, settings = asyncio.run(_describe(cluster.kafka_access))
    assert brokers == 3
    assert {t["topic"] for t in topics} == {topic.name for topic in ALL_TOPICS}
    replicas = Counter(len(p["replicas"]) for t in topics for p in t["partitions"])  # type: ignore[attr-defined]
    assert set(replicas) == {3}, replicas
    assert settings["min.insync.replicas"] == "2"
    status = launcher(cluster.env, "status").stdout.splitlines()
    assert [line.split()[0] for line in status[1:4]] == ["kafka-1", "kafka-2", "kafka-3"]
    assert all(" ready " in line for line in status[1:4]), status


def test_kcat_lists_the_cluster_with_the_launchers_config_and_nothing_without(
    cluster: Shop,
) -> None:
    config = str(Path(cluster.env["SHOP_STATE_DIR"]) / "kcat.conf")
    listed = kcat("-L", config=config)
    assert listed.returncode == 0, listed.stderr
    assert " 3 brokers:" in listed.stdout
    partitions = re.findall(r"partition \d+, leader \d+, replicas: ([\d,]+),", listed.stdout)
    # the shop's topics, and Kafka's own __consumer_offsets
    assert len(partitions) == sum(topic.partitions for topic in ALL_TOPICS) + 6
    assert {len(replicas.split(",")) for replicas in partitions} == {3}

    anonymous = kcat("-b", cluster.config.kafka_bootstrap, "-L", "-m", "5")
    assert anonymous.returncode != 0 and "topic" not in anonymous.stdout, anonymous.stdout


def test_a_service_reads_what_it_consumes_and_cannot_write_what_it_does_not_own(
    cluster: Shop,
) -> None:
    notifications = kcat_config(cluster, "notification_svc")
    read = kcat("-C", "-t", "users.events", "-e", "-q", config=notifications)
    assert read.returncode == 0, read.stderr
    succeeded = '{"type": "PaymentSucceeded", "data": {}}\n'  # a forged one: never written
    forged = kcat("-P", "-t", "payments.events", "-k", "o-1", config=notifications, send=succeeded)
    assert "Topic authorization failed" in forged.stderr, forged.stderr
    # nor may it read what it does not consume, nor join another service's group
    other = kcat("-C", "-t", "orders.commands", "-e", "-q", config=notifications)
    assert "authoriz" in other.stderr.lower(), other.stderr
    group = kcat("-G", "payment_svc", "users.events", "-e", "-q", config=notifications)
    assert "authoriz" in group.stderr.lower(), group.stderr
    # the gateway writes commands and reads orders.events; no event is its to write
    gateway = kcat_config(cluster, "gateway_svc")
    command = '{"type": "PlaceOrder", "data": {}}\n'
    sent = kcat("-P", "-t", "orders.commands", "-k", "o-2", config=gateway, send=command)
    assert sent.returncode == 0 and "failed" not in sent.stderr.lower(), sent.stderr
    event = kcat("-P", "-t", "orders.events", "-k", "o-2", config=gateway, send=succeeded)
    assert "Topic authorization failed" in event.stderr, event.stderr
    users = kcat("-C", "-t", "users.events", "-e", "-q", config=gateway)
    assert "authoriz" in users.stderr.lower(), users.stderr
    assert set(PRINCIPALS) == {*CONSUMED_TOPICS, "gateway_svc"}


def order_ready(shop: Shop) -> tuple[Client, dict[str, Any]]:
    """A customer, and an order for a product in stock, to place."""
    admin, customer = shop.admin(), shop.customer("Clustered")
    return customer, order_body(customer, new_product(admin, price="4.00", stock=3))


def place_and_pay(customer: Client, order: dict[str, Any], within_s: float = 30) -> None:
    """Place the order as a client would (again after a 503, which asks it to), and see it
    paid."""
    deadline = time.monotonic() + within_s
    while (placed := customer.post("/orders", json=order)).status_code == 503:
        assert time.monotonic() < deadline, placed.text
        time.sleep(1)
    assert placed.status_code == 202, placed.text
    while True:  # a long poll waits 30 s at most; not found yet while its command waits
        answer = customer.get(f"/orders/{placed.json()['id']}", params={"wait": 30})
        paid = answer.json() if answer.status_code == 200 else {"status": answer.text}
        if answer.status_code == 200 and paid["status"] != "Pending":
            break
        assert time.monotonic() < deadline, paid
        if answer.status_code != 200:
            time.sleep(1)
    assert paid["status"] == "Paid", paid


def test_an_order_is_paid_on_the_secured_cluster_by_two_processes_of_each_service(
    cluster: Shop,
) -> None:
    status = launcher(cluster.env, "status").stdout.splitlines()
    running = Counter(line.split()[0].split("#")[0] for line in status[1:] if " ready " in line)
    assert {name: running[name] for name in CONSUMED_TOPICS} == dict.fromkeys(CONSUMED_TOPICS, 2)
    assert running["gateway_svc"] == 1
    place_and_pay(*order_ready(cluster))


def test_orders_are_paid_with_one_process_of_each_service_killed(cluster: Shop) -> None:
    customer, order = order_ready(cluster)
    for service in CONSUMED_TOPICS:
        stack(cluster, "stop", f"{service}#2", "--kill")
    try:
        # the survivors take the dead members' partitions a session timeout (30 s) later
        place_and_pay(customer, order, within_s=90)
    finally:
        for service in CONSUMED_TOPICS:
            stack(cluster, "start", f"{service}#2")


class Writes:
    """A stream of idempotent ``acks=all`` writes to one topic in a thread of its own; what the
    cluster acknowledged, counted per value."""

    def __init__(self, access: KafkaAccess, topic: Topic) -> None:
        self.access = access
        self.topic = topic
        self.acknowledged: list[bytes] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        producer = AIOKafkaProducer(
            **self.access.client_options(),
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


def writes_topic(shop: Shop, name: str) -> Topic:
    """A topic of the test's own, replicated as the shop's are: its writes are no shop's
    business (on the shop's topics they would all be dead letters)."""
    topic = Topic(f"e2e.cluster.{name}")
    asyncio.run(kafka_admin.ensure_topics(shop.kafka_access, [topic]))
    return topic


def _assert_nothing_lost_or_doubled(writes: Writes) -> None:
    assert len(writes.acknowledged) > 50, "too few writes to show anything"
    records = asyncio.run(read_to_end(writes.access, writes.topic))
    found = Counter(record.value for record in records)
    missing = [value for value in writes.acknowledged if found[value] == 0]
    doubled = [value for value, count in found.items() if count > 1]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
    assert not doubled, f"{len(doubled)} writes doubled, e.g. {doubled[:3]}"


def test_killing_the_busiest_leader_loses_no_acknowledged_write(cluster: Shop) -> None:
    access = cluster.kafka_access
    busiest, _ = asyncio.run(kafka_admin.leaders(access)).most_common(1)[0]
    with Writes(access, writes_topic(cluster, "broker-kill")).running() as writes:
        asyncio.run(asyncio.sleep(2))
        stack(cluster, "stop", f"kafka-{busiest}", "--kill")
        # its partitions have no leader until the controllers fence it, a broker session
        # (broker.session.timeout.ms, 9 s) after its last heartbeat
        killed_at = len(writes.acknowledged)
        assert asyncio.run(
            eventually(lambda: len(writes.acknowledged) > killed_at + 20, timeout_s=45)
        )
        assert busiest not in asyncio.run(kafka_admin.leaders(access))
        assert "catching up" in stack(cluster, "start", f"kafka-{busiest}")
    _assert_nothing_lost_or_doubled(writes)


def test_a_rolling_restart_loses_no_acknowledged_write(cluster: Shop) -> None:
    with Writes(cluster.kafka_access, writes_topic(cluster, "rolling")).running() as writes:
        for node in ("kafka-1", "kafka-2", "kafka-3"):
            out = stack(cluster, "restart", node)
            assert re.search(rf"{node} +stopped", out) and "catching up" in out, out
    _assert_nothing_lost_or_doubled(writes)
    status = launcher(cluster.env, "status").stdout.splitlines()
    assert all(" ready " in line for line in status[1:]), status


def test_the_nodes_share_one_cluster_id_and_keep_their_secrets_private(cluster: Shop) -> None:
    state = Path(cluster.env["SHOP_STATE_DIR"])
    metas = [(state / f"kafka-{i}" / "data" / "meta.properties").read_text() for i in (1, 2, 3)]
    ids = {meta.split("cluster.id=")[1].split()[0] for meta in metas}
    assert len(ids) == 1, ids
    secrets = [state / "kcat.conf", *(state / "secrets" / "kafka").iterdir()]
    secrets += [state / f"kafka-{i}" / "server.properties" for i in (1, 2, 3)]
    assert state / "secrets" / "kafka" / "admin.properties" in secrets  # for Kafka's tools
    assert {oct(path.stat().st_mode & 0o777) for path in secrets} == {oct(0o600)}
    # a node's folder holds the topics' records: no one else reads them around the ACLs
    folders = [state / f"kafka-{i}" for i in (1, 2, 3)]
    assert {oct(path.stat().st_mode & 0o777) for path in folders} == {oct(0o700)}
    assert not [
        path
        for path in (state / f"kafka-{i}" for i in (1, 2, 3))
        if (path / "format.args").exists()
    ]
