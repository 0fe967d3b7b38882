"""The running Kafka cluster through its admin API: whether it answers with its brokers, which
partitions are out of sync and who leads them, and the shop's topics created with the replication
the cluster allows. Readiness is asked of the cluster itself, since an open port does not mean a
broker that answers."""

import asyncio
import time
from collections import Counter
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from common.kafka_access import KafkaAccess
from schemas.topics import ALL_TOPICS, Topic
from stack.kafka_properties import replication


async def _admin(access: KafkaAccess) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(**access.client_options(), request_timeout_ms=5000)
    await admin.start()
    return admin


async def wait_ready(access: KafkaAccess, timeout_s: float = 60, brokers: int = 1) -> None:
    """Ready means the cluster answers a metadata request with at least ``brokers`` brokers in
    it, not merely that a port is open."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = await _admin(access)
            try:
                cluster = await admin.describe_cluster()
            finally:
                await admin.close()
            if len(cluster["brokers"]) >= brokers:
                return
            if time.monotonic() > deadline:
                raise KafkaError(f"{len(cluster['brokers'])} of {brokers} brokers up")
        except (KafkaError, OSError):
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.3)


async def under_replicated(access: KafkaAccess) -> list[str]:
    """The partitions (``topic/partition``) whose in-sync replicas are fewer than their
    replicas: a rolling restart waits for none before it takes the next broker down."""
    admin = await _admin(access)
    try:
        topics = await admin.describe_topics()
    finally:
        await admin.close()
    return [
        f"{topic['topic']}/{partition['partition']}"
        for topic in topics
        for partition in topic["partitions"]
        if len(partition["isr"]) < len(partition["replicas"])
    ]


async def leaders(access: KafkaAccess) -> Counter[int]:
    """How many partitions each broker leads (by node id), over every topic: the fault cases
    kill the busiest."""
    admin = await _admin(access)
    try:
        topics = await admin.describe_topics()
    finally:
        await admin.close()
    return Counter(partition["leader"] for topic in topics for partition in topic["partitions"])


async def wait_in_sync(access: KafkaAccess, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while lagging := await under_replicated(access):
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(lagging)} partitions not in sync: {', '.join(lagging[:5])}…")
        await asyncio.sleep(0.5)


async def ensure_topics(access: KafkaAccess, topics: Iterable[Topic] = ALL_TOPICS) -> int:
    """Create the missing topics; returns how many were created."""
    admin = await _admin(access)
    try:
        existing = set(await admin.list_topics())
        replicas, min_isr = replication(len((await admin.describe_cluster())["brokers"]))
        missing = [
            NewTopic(
                topic.name,
                num_partitions=topic.partitions,
                replication_factor=replicas,
                topic_configs={"min.insync.replicas": str(min_isr)},
            )
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


async def is_ready(access: KafkaAccess) -> bool:
    try:
        await asyncio.wait_for(wait_ready(access, timeout_s=0), 5)
    except (KafkaError, OSError, TimeoutError):
        return False
    return True
