"""Faults under a steady stream of orders; after each, once it has cleared, the guarantees hold:
every accepted order final, nothing paid or refunded twice, stock equal to the ledger, money
adding up, one notification per event, dead letters exactly the poison, outboxes drained."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from functools import partial

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.kafka_access import KafkaAccess
from schemas.topics import CONSUMED_TOPICS, DOMAIN_TOPICS
from stack import dlq
from stack.config import ROOT
from tests.faults.conftest import FIGURES, chosen_cases, faults_rate, faults_seconds
from tests.faults.figures import FaultWindow, fault_figures
from tests.faults.load import CANCEL_SHARE, OrderStream
from tests.faults.shop import SERVICES, FaultShop

pytestmark = pytest.mark.faults

CONSUMERS = CONSUMED_TOPICS


def run_case(fs: FaultShop, name: str, inject: Callable[[], None]) -> None:
    absorbed_before = fs.databases.duplicates_absorbed()
    stream = OrderStream(
        fs.shop.url, fs.buyers, fs.catalog, faults_rate(), cancel_share=CANCEL_SHARE
    )
    seconds = faults_seconds()
    stream.start()
    time.sleep(seconds / 3)
    started = time.time()
    inject()
    fault = FaultWindow(name, started, time.time(), restarted_service(name))
    time.sleep(max(1.0, seconds * 2 / 3))
    tally = stream.stop()
    fs.accepted.update(tally.accepted)
    recovery = fs.databases.wait_until_settled(fs.accepted)
    findings = fs.databases.check(fs.accepted)
    letters_wrong = dead_letters_not_poison(fs)
    FIGURES.append(
        {
            "case": name,
            "sent": tally.sent,
            "accepted": len(tally.accepted),
            "refused": tally.refused,
            "finished": len(tally.accepted)
            - len([o for o in findings.lost if o in tally.accepted]),
            "lost": len(findings.lost),
            "dup_effects": findings.duplicated_effects,
            "dup_absorbed": fs.databases.duplicates_absorbed() - absorbed_before,
            "recovery_s": recovery,
            **fault_figures(fs.databases, tally.sent_at, fault),
        }
    )
    assert tally.accepted, "no order was accepted: the stream never reached the shop"
    assert findings.problems() == [], findings.problems()
    assert letters_wrong == [], letters_wrong


def dead_letters_not_poison(fs: FaultShop) -> list[str]:
    wrong = []
    for service, expected in fs.poison.items():
        letters = asyncio.run(dlq.read(fs.kafka_access, service))
        values = {letter.value for letter in letters}
        wrong += [
            f"{service}: {x.headers.get('dlq.reason')}" for x in letters if x.value not in expected
        ]
        wrong += [f"{service}: poison {v!r} not dead-lettered" for v in expected - values]
    return wrong


def restarted_service(case: str) -> str | None:
    """The service a case restarts (kill_payment_svc: payment_svc), if it restarts one; a
    provider's fault is payment_svc's."""
    if case.startswith("provider_"):
        return "payment_svc"
    _, _, service = case.partition("_")
    return service if service in SERVICES else None


def sigterm_every_service(fs: FaultShop) -> None:
    for service in SERVICES:
        fs.sigterm_restart(service)


def redeliver(fs: FaultShop) -> None:
    """Publish the last records of every topic again, and rewind payment_svc's group."""
    asyncio.run(_republish_tail(fs.kafka_access, per_partition=20))
    fs.stack("rewind", "payment_svc", "--by", "30")


async def _republish_tail(access: KafkaAccess, per_partition: int) -> None:
    options = access.client_options()
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False, group_id=None)
    producer = AIOKafkaProducer(**options, enable_idempotence=True)
    await consumer.start()
    await producer.start()
    try:
        for topic in DOMAIN_TOPICS:
            partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                consumer.seek(tp, max(0, ends[tp] - per_partition))
            wanted = sum(min(per_partition, ends[tp]) for tp in partitions)
            seen = 0
            while seen < wanted:
                batch = await consumer.getmany(timeout_ms=1000)
                if not batch:
                    break
                for records in batch.values():
                    for record in records:
                        if record.offset < ends[TopicPartition(record.topic, record.partition)]:
                            seen += 1
                            await producer.send(
                                record.topic,
                                record.value,
                                key=record.key,
                                headers=list(record.headers),
                            )
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()


def poison(fs: FaultShop) -> None:
    """Malformed, oversized-looking, wrong-typed and unknown messages on every consumed topic."""
    asyncio.run(_publish_poison(fs))


async def _publish_poison(fs: FaultShop) -> None:
    producer = AIOKafkaProducer(**fs.kafka_access.client_options())
    await producer.start()
    try:
        topics = {topic for topics in CONSUMERS.values() for topic in topics}
        for topic in topics:
            tag = uuid.uuid4().hex
            payloads = [
                b"not json " + tag.encode(),
                f'{{"id": "{tag}", "type": 42}}'.encode(),
                f'{{"id": "{uuid.uuid4()}", "type": "Teleported", "version": 1, '
                f'"occurred_at": "2026-01-01T00:00:00Z", "correlation_id": "{uuid.uuid4()}", '
                f'"data": {{"tag": "{tag}"}}}}'.encode(),
            ]
            for payload in payloads:
                await producer.send_and_wait(topic.name, payload, key=tag.encode())
                for service, consumed in CONSUMERS.items():
                    if topic in consumed:
                        fs.poison[service].add(payload)
    finally:
        await producer.stop()


def stalled_consumer(fs: FaultShop) -> None:
    """A second order_svc replica joins the group, then stalls past its session timeout, so the
    group rebalances around it; then it wakes up, and is stopped."""
    env = {
        **fs.shop.env,
        **fs.shop.config.kafka_env("order_svc"),
        "DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{fs.shop.env['SHOP_PG_PORT']}/postgres",
        "HTTP_PORT": str(8002 + int(fs.shop.env["SHOP_HTTP_PORT_OFFSET"]) + 50),
        "CONSUMER_REPLICA": "2",
    }
    replica = subprocess.Popen(
        [sys.executable, "-m", "order_svc"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{env['HTTP_PORT']}/readyz"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        time.sleep(3)  # let the group hand it partitions
        replica.send_signal(signal.SIGSTOP)
        time.sleep(14)  # past the 10 s session timeout
        replica.send_signal(signal.SIGCONT)
        time.sleep(3)
    finally:
        replica.terminate()
        replica.wait(timeout=30)


def provider_errors(fs: FaultShop) -> None:
    """For a few seconds the provider fails a third of its charges after capturing the money,
    some of them by timing out: each such charge is settled by its key, never lost or doubled."""
    fs.provider_window(
        "error_after_capture=0.3,timeout_after_capture=0.05", max(2.0, faults_seconds() / 3)
    )


def provider_down_redrive(fs: FaultShop) -> None:
    """The provider unavailable long enough for payment_svc to dead-letter reservations after
    its tries; once it is back, an operator re-drives them. Their orders end once, whether the
    sweep settled them first or the re-drive did."""
    before = {letter.offset for letter in asyncio.run(dlq.read(fs.kafka_access, "payment_svc"))}
    fs.provider_window("unavailable=1", 4)
    new = fs.new_dead_letters("payment_svc", before)
    assert new, "the provider was down 4 s and payment_svc dead-lettered nothing"
    fs.poison["payment_svc"].update(letter.value for letter in new)  # expected there, not poison
    fs.stack("dlq", "redrive", "payment_svc", *(str(letter.offset) for letter in new))


CASES: dict[str, Callable[[FaultShop], None]] = {
    **{
        f"kill_{service}": partial(FaultShop.kill_and_restart, service=service)
        for service in SERVICES
    },
    **{
        f"sigterm_{service}": partial(FaultShop.sigterm_restart, service=service)
        for service in SERVICES
    },
    "sigterm_every_service": sigterm_every_service,
    "broker_restart": FaultShop.restart_broker,
    "database_restart": FaultShop.restart_database,
    "redeliver": redeliver,
    "poison": poison,
    "stalled_consumer": stalled_consumer,
    "provider_errors": provider_errors,
    "provider_down_redrive": provider_down_redrive,
}
FULL = [f"kill_{s}" for s in SERVICES] + [
    "sigterm_every_service",
    "broker_restart",
    "database_restart",
    "redeliver",
    "poison",
    "stalled_consumer",
    "provider_errors",
    "provider_down_redrive",
]


def selected() -> list[str]:
    cases = chosen_cases()
    return FULL if cases == ["all"] else [case for case in cases if case in CASES]


@pytest.mark.parametrize("case", selected())
def test_guarantees_hold_after(case: str, fault_shop: FaultShop) -> None:
    run_case(fault_shop, case, lambda: CASES[case](fault_shop))


def test_duplicates_were_tried_and_absorbed(fault_shop: FaultShop) -> None:
    if not FIGURES:
        pytest.skip("no fault case ran")
    assert fault_shop.databases.duplicates_absorbed() > 0
    if os.environ.get("SHOP_FAULTS_MIN_ORDERS"):
        assert len(fault_shop.accepted) >= int(os.environ["SHOP_FAULTS_MIN_ORDERS"])
