"""A service's consumer is a static member of its group, one id per replica: a restarted
process takes its partitions back at once (tests/e2e/test_restart.py), and one that stops
gracefully still hands them over at once."""

from collections.abc import Callable
from typing import Any

from notification_svc.app import create_app
from notification_svc.settings import Settings
from schemas.topics import USERS_EVENTS
from tests.conftest import eventually
from tests.integration.conftest import InProcess, in_process


def partitions_of(service: InProcess) -> set[int]:
    consumer = service.runtime.broker.subscribers[0].consumer
    return {tp.partition for tp in consumer.assignment() if tp.topic == USERS_EVENTS.name}


async def test_a_replica_that_stops_hands_its_partitions_to_the_other_at_once(
    settings_for: Callable[..., Any],
) -> None:
    one = settings_for(Settings, sending_enabled=False, consumer_session_timeout_ms=30_000)
    two = settings_for(
        Settings,
        sending_enabled=False,
        consumer_session_timeout_ms=30_000,
        consumer_group=one.consumer_group,
        database_name=one.database_name,
        consumer_replica=2,
    )
    assert one.consumer_instance_id != two.consumer_instance_id
    async with in_process(create_app(one)) as first:
        async with in_process(create_app(two)) as second:

            def split() -> bool:
                mine, theirs = partitions_of(first), partitions_of(second)
                return bool(mine and theirs) and len(mine | theirs) == USERS_EVENTS.partitions

            await eventually(split, timeout_s=30)

        # Well within the 30 s session: the stopped replica left the group.
        await eventually(lambda: len(partitions_of(first)) == USERS_EVENTS.partitions, timeout_s=10)
