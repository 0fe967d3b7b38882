"""How far consumer groups are behind, from the broker: each partition's end offset against the
group's committed one (a partition it never committed on counts from its beginning). Read the
same whether the group's members run or not."""

import contextlib
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from common.kafka_access import KafkaAccess
from schemas.topics import CONSUMED_TOPICS, Topic


class LagReader:
    """An admin client and an offsets-only consumer, opened on first use and kept between
    reads (a service samples its lag every few seconds)."""

    def __init__(self, access: KafkaAccess) -> None:
        self._access = access
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def per_partition(self, group: str, topics: Sequence[Topic]) -> dict[TopicPartition, int]:
        """Messages ``group`` has yet to commit, partition by partition."""
        admin, consumer = await self._open()
        committed = await admin.list_consumer_group_offsets(group)
        partitions = [TopicPartition(t.name, p) for t in topics for p in range(t.partitions)]
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        return {
            tp: max(0, ends[tp] - (committed[tp].offset if tp in committed else starts[tp]))
            for tp in partitions
        }

    async def _open(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            await self.close()
            admin = AIOKafkaAdminClient(**self._access.client_options(), request_timeout_ms=5000)
            await admin.start()
            self._admin = admin
            consumer = AIOKafkaConsumer(
                **self._access.client_options(), group_id=None, request_timeout_ms=5000
            )
            await consumer.start()
            self._consumer = consumer
        return self._admin, self._consumer

    async def close(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        with contextlib.suppress(Exception):  # a broker away: nothing left to close cleanly
            if consumer is not None:
                await consumer.stop()
        with contextlib.suppress(Exception):
            if admin is not None:
                await admin.close()


async def consumer_lag(
    access: KafkaAccess, groups: Mapping[str, Sequence[Topic]] = CONSUMED_TOPICS
) -> dict[str, int]:
    """Messages each consumer group has yet to commit, over every partition of its topics."""
    reader = LagReader(access)
    try:
        return {
            group: sum((await reader.per_partition(group, topics)).values())
            for group, topics in groups.items()
        }
    finally:
        await reader.close()
