"""Failover under load, on Kafka as production runs it (three brokers, SASL/SCRAM with ACLs, two
processes of each service; ``tests/faults/shop.py``'s CLUSTER), under the usual stream of orders
and checked by the usual invariants (``run_case``): a broker killed, the brokers restarted one by
one, one process of each service killed while the other goes on, two product_svc processes
racing for the last units of a hot product, a process stalled past its session timeout.

Its shop runs for this module only, beside nothing: the other fault cases' shop starts after it.
"""

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from schemas.topics import CONSUMED_TOPICS
from stack import kafka_admin, procs
from tests.e2e.conftest import new_product
from tests.faults.conftest import chosen_cases, faults_seconds
from tests.faults.shop import FaultShop, ShopDidNotStartError, running_fault_shop
from tests.faults.test_faults import run_case

pytestmark = pytest.mark.faults

HOT_STOCK = 20
HOT_ORDERS = 40


@pytest.fixture(scope="module")
def cluster_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultShop]:
    try:
        with running_fault_shop(tmp_path_factory.mktemp("failover"), cluster=True) as shop:
            yield shop
    except ShopDidNotStartError as exc:
        pytest.fail(str(exc))


def kill_busiest_broker(fs: FaultShop) -> None:
    """``kill -9`` of the broker that leads the most partitions; back after a while."""
    busiest, _ = asyncio.run(kafka_admin.leaders(fs.kafka_access)).most_common(1)[0]
    fs.stack("stop", f"kafka-{busiest}", "--kill")
    time.sleep(max(3.0, faults_seconds() / 2))
    fs.stack("start", f"kafka-{busiest}")  # returns once every partition is in sync


def rolling_restart(fs: FaultShop) -> None:
    """Each broker stopped and started in turn, the next once the last has caught up."""
    for node in ("kafka-1", "kafka-2", "kafka-3"):
        fs.stack("restart", node)


def kill_one_replica_each(fs: FaultShop) -> None:
    """One process of every service killed; the other goes on alone, then it comes back."""
    for service in CONSUMED_TOPICS:
        fs.stack("stop", f"{service}#2", "--kill")
    time.sleep(max(3.0, faults_seconds() / 2))
    for service in CONSUMED_TOPICS:
        fs.stack("start", f"{service}#2")


def stalled_replica(fs: FaultShop) -> None:
    """order_svc#2 frozen (SIGSTOP) past its session timeout (10 s here): the group takes its
    partitions away; then it wakes up (SIGCONT) to find them gone, and rejoins."""
    pid = procs.running_pid(fs.shop.config, "order_svc#2")
    assert pid is not None, "order_svc#2 is not running"
    assert _wait_for_members(fs, "order_svc", 2, timeout_s=30)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(10)  # its session
        assert _wait_for_members(fs, "order_svc", 1, timeout_s=20), "the group kept it"
    finally:
        os.kill(pid, signal.SIGCONT)
    assert _wait_for_members(fs, "order_svc", 2, timeout_s=30), "it did not rejoin"


def _wait_for_members(fs: FaultShop, group: str, count: int, *, timeout_s: float) -> bool:
    """Whether the consumer group has ``count`` members within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while asyncio.run(_members(fs, group)) != count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


async def _members(fs: FaultShop, group: str) -> int:
    admin = AIOKafkaAdminClient(**fs.kafka_access.client_options())
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    return len(response.groups[0][5])  # (error, group, state, protocol type, protocol, members…)


def hot_product_race(fs: FaultShop) -> None:
    """Twice as many orders as a product has units, all at once: both product_svc processes
    reserve from it, their batches contending for its row. Exactly its stock is sold, and a
    deadlock between batches ends in a retry, never a dead letter (run_case's checks)."""
    hot = new_product(fs.shop.admin(), price="7.00", stock=HOT_STOCK)
    fs.hot_products.add(hot)

    def place(n: int) -> str | None:
        buyer = fs.buyers[n % len(fs.buyers)]
        body = {"items": [{"product_id": hot, "quantity": 1}], "payment_method_id": buyer.card}
        headers = {"Authorization": f"Bearer {buyer.token}", "Idempotency-Key": f"hot-{hot}-{n}"}
        for _ in range(8):
            answer = httpx.post(f"{fs.shop.url}/orders", json=body, headers=headers, timeout=30)
            if answer.status_code == 202:
                return str(answer.json()["id"])
            time.sleep(0.5)
        return None

    with ThreadPoolExecutor(max_workers=16) as pool:
        placed = [order for order in pool.map(place, range(HOT_ORDERS)) if order]
    assert placed, "no order for the hot product was accepted"
    fs.accepted.update(dict.fromkeys(placed, "hot"))


CASES: dict[str, Callable[[FaultShop], None]] = {
    "failover_kill_busiest_broker": kill_busiest_broker,
    "failover_rolling_restart": rolling_restart,
    "failover_kill_one_replica_each": kill_one_replica_each,
    "failover_hot_product_race": hot_product_race,
    "failover_stalled_replica": stalled_replica,
}


def selected() -> list[str]:
    cases = chosen_cases()
    return list(CASES) if cases == ["all"] else [case for case in cases if case in CASES]


@pytest.mark.parametrize("case", selected())
def test_guarantees_hold_on_the_cluster_after(case: str, cluster_shop: FaultShop) -> None:
    run_case(cluster_shop, case, lambda: CASES[case](cluster_shop))
    for product in cluster_shop.hot_products:
        sold_out = cluster_shop.databases.value(
            "product_svc", "SELECT stock FROM inventory WHERE product_id = %s", (product,)
        )
        assert sold_out == 0, f"the hot product has {sold_out} units left after the race"
