"""Delivery guarantees of the shared plumbing, on the real broker and database, through two real
services: user_svc's outbox feeds notification_svc's tables."""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import RecordMetadata
from sqlalchemy import func, select

from common.inbox import claim, first_delivery, forget_old
from common.lag import consumer_lag
from common.outbox import _TAKE, RELAY_LOCK, OutboxRelay, stage
from common.unit_of_work import batch_transaction
from notification_svc import services as notification_services
from notification_svc.app import create_app as create_notification_app
from notification_svc.models import Inbox as NotificationInbox
from notification_svc.models import Notification, UserContact
from notification_svc.settings import Settings as NotificationSettings
from schemas.envelope import Envelope, encode
from schemas.topics import USERS_EVENTS, dead_letter_topic
from schemas.users import UserRegistered, UserUpdated
from tests.conftest import Infra, eventually, unique
from tests.integration.conftest import (
    InProcess,
    committed_offset,
    in_inbox,
    in_process,
    read_topic,
    send,
)
from user_svc import services as user_services
from user_svc.app import create_app as create_user_app
from user_svc.models import Inbox as UserInbox
from user_svc.models import Outbox as UserOutbox
from user_svc.settings import Settings as UserSettings


async def count_notifications(notifications: InProcess, user_id: Any) -> int:
    async with notifications.runtime.sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.user_id == user_id)
            )
            or 0
        )


async def test_event_from_outbox_changes_other_service_once_when_delivered_twice(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    users_app = create_user_app(settings_for(UserSettings))
    notifications_app = create_notification_app(
        settings_for(NotificationSettings, sending_enabled=False)
    )
    async with in_process(users_app) as users, in_process(notifications_app) as notifications:
        email = f"{unique('ann')}@example.com"
        user = await user_services.register_user(
            users.runtime.sessionmaker,
            users_app.state.passwords,
            name="Ann",
            email=email,
            password="correct horse",
        )

        assert await eventually(lambda: count_notifications(notifications, user.id)) == 1
        async with notifications.runtime.sessionmaker() as session:
            contact = await session.get(UserContact, user.id)
        assert contact is not None and contact.email == email

        published = await read_topic(
            infra,
            USERS_EVENTS.name,
            until=lambda records: any(str(user.id).encode() == r.key for r in records),
        )
        original = next(r for r in published if r.key == str(user.id).encode())
        consumer = notifications.runtime.consumers[0]
        applied_before = consumer.stats.applied
        # the very record the relay wrote, once more
        await producer.send_and_wait(USERS_EVENTS.name, original.value, key=original.key)

        await eventually(lambda: consumer.stats.applied > applied_before)
        assert await count_notifications(notifications, user.id) == 1
        assert consumer.stats.one_at_a_time == 0  # every batch took the fast path
        message_id = Envelope.model_validate_json(original.value).id
        async with notifications.runtime.sessionmaker() as session:
            inbox_row = await session.get(NotificationInbox, message_id)
        assert inbox_row is not None and inbox_row.duplicates == 1


async def test_poison_messages_go_to_dead_letter_topic_and_consumer_goes_on(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    notifications_app = create_notification_app(
        settings_for(NotificationSettings, sending_enabled=False)
    )
    async with in_process(notifications_app) as notifications:
        marker = unique("poison").encode()
        not_json = b"{not json " + marker
        good = UserRegistered(user_id=uuid4(), name="Bo", email="bo@example.com", role="Customer")
        bad_data = encode(good.envelope()).replace(b"bo@example.com", b"not-an-email")
        key = str(good.user_id).encode()
        await producer.send_and_wait(USERS_EVENTS.name, not_json, key=key)
        await producer.send_and_wait(USERS_EVENTS.name, bad_data, key=key)
        await send(producer, good)

        assert await eventually(lambda: count_notifications(notifications, good.user_id)) == 1

        dlq = dead_letter_topic("notification_svc").name
        ours = (not_json, bad_data)
        dead = await read_topic(
            infra, dlq, until=lambda records: sum(r.value in ours for r in records) >= 2
        )
        letters = [r for r in dead if r.value in ours]
        assert [r.value for r in letters] == [not_json, bad_data]
        for letter in letters:
            headers = {name: value.decode() for name, value in letter.headers}
            assert headers["dlq.topic"] == USERS_EVENTS.name
            assert headers["dlq.service"] == "notification_svc"
            assert int(headers["dlq.offset"]) >= 0
            assert headers["dlq.partition"].isdigit()
        reasons = [dict(letter.headers)["dlq.reason"].decode() for letter in letters]
        assert "not a valid envelope" in reasons[0]
        assert "invalid UserRegistered v1 data" in reasons[1] and "email" in reasons[1]


async def test_rolled_back_transaction_publishes_nothing(
    settings_for: Callable[..., Any], infra: Infra
) -> None:
    users_app = create_user_app(settings_for(UserSettings))
    async with in_process(users_app) as users:
        relay, sessions = users.runtime.relay, users.runtime.sessionmaker
        event = UserRegistered(user_id=uuid4(), name="Cy", email="cy@example.com", role="Customer")

        class Abort(Exception):
            pass

        try:
            async with sessions.begin() as session:
                stage(session, UserOutbox, event)
                await session.flush()
                raise Abort
        except Abort:
            pass

        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(UserOutbox)) == 0
        assert await relay.publish_pending() == 0

        published_before = relay.published
        async with sessions.begin() as session:
            committed = stage(session, UserOutbox, event)
        await eventually(lambda: relay.published > published_before)
        records = await read_topic(
            infra,
            USERS_EVENTS.name,
            until=lambda rs: any(str(event.user_id).encode() == r.key for r in rs),
        )
        ours = [r for r in records if r.key == str(event.user_id).encode()]
        assert len(ours) == 1
        assert str(committed.id).encode() in ours[0].value


async def test_a_failing_message_is_dead_lettered_and_the_rest_of_its_batch_applied(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    notifications_app = create_notification_app(
        settings_for(NotificationSettings, sending_enabled=False)
    )
    async with in_process(notifications_app) as notifications:
        first, second = (
            UserRegistered(user_id=uuid4(), name=name, email="ok@example.com", role="Customer")
            for name in ("Ann", "Bo")
        )
        # Valid on the wire, refused by the database (a name over 255 characters).
        too_long = UserRegistered(
            user_id=uuid4(), name="x" * 300, email="long@example.com", role="Customer"
        )
        batch = [first, too_long, second]
        await asyncio.gather(*(send(producer, event) for event in batch))

        for event in (first, second):
            assert (
                await eventually(lambda e=event: count_notifications(notifications, e.user_id)) == 1
            )
        dead = await read_topic(
            infra,
            dead_letter_topic("notification_svc").name,
            until=lambda rs: any(r.key == too_long.key() for r in rs),
        )
        [letter] = [r for r in dead if r.key == too_long.key()]
        assert b"too long" in dict(letter.headers)["dlq.reason"]
        assert await count_notifications(notifications, too_long.user_id) == 0


async def test_a_batch_claim_tells_first_deliveries_from_repeats_and_counts_them(
    settings_for: Callable[..., Any],
) -> None:
    async with in_process(create_user_app(settings_for(UserSettings))) as users:
        sessions = users.runtime.sessionmaker
        seen, fresh = uuid4(), uuid4()
        async with sessions.begin() as session:
            assert await first_delivery(session, UserInbox, seen, "UserUpdated")
        async with sessions.begin() as session:
            await claim(
                session,
                UserInbox,
                [(fresh, "UserUpdated"), (seen, "UserUpdated"), (fresh, "UserUpdated")],
            )
            answers = [
                await first_delivery(session, UserInbox, message_id, "UserUpdated")
                for message_id in (fresh, seen, fresh)
            ]
        async with sessions.begin() as session:
            await claim(session, UserInbox, [(seen, "UserUpdated")])  # the statement, reused
            answers.append(await first_delivery(session, UserInbox, seen, "UserUpdated"))
        assert answers == [True, False, False, False]
        async with sessions() as session:
            rows = {
                row.message_id: row.duplicates
                for row in await session.scalars(
                    select(UserInbox).where(UserInbox.message_id.in_([seen, fresh]))
                )
            }
        assert rows == {seen: 2, fresh: 1}


async def inbox_ids(users: InProcess) -> set[UUID]:
    async with users.runtime.sessionmaker() as session:
        return set((await session.scalars(select(UserInbox.message_id))).all())


async def add_inbox_ids(users: InProcess, hours_ago: Mapping[UUID, float]) -> None:
    now = datetime.now(UTC)
    async with users.runtime.sessionmaker.begin() as session:
        session.add_all(
            UserInbox(
                message_id=message_id,
                message_type="UserUpdated",
                processed_at=now - timedelta(hours=hours),
            )
            for message_id, hours in hours_ago.items()
        )


async def test_the_inbox_forgets_the_ids_older_than_it_keeps_and_a_redelivery_starts_again(
    settings_for: Callable[..., Any],
) -> None:
    async with in_process(create_user_app(settings_for(UserSettings))) as users:
        sessions = users.runtime.sessionmaker
        old = [uuid4() for _ in range(6)]
        kept = [uuid4() for _ in range(3)]
        await add_inbox_ids(
            users, {i: 400 for i in old} | dict(zip(kept, (300, 1, 0), strict=True))
        )
        # two old ids delivered again (a rewind, a re-driven dead letter), one by each path
        async with sessions.begin() as session:
            await claim(session, UserInbox, [(old[0], "UserUpdated")])
        async with sessions.begin() as session:
            assert not await first_delivery(session, UserInbox, old[1], "UserUpdated")

        # two ids a transaction: two rounds for the four old ones, and one that finds none
        forgotten = await forget_old(sessions, UserInbox, timedelta(hours=360), batch=2)
        again = await forget_old(sessions, UserInbox, timedelta(hours=360), batch=2)

        assert (forgotten, again) == (4, 0)
        assert await inbox_ids(users) == {old[0], old[1], *kept}


async def test_a_running_service_forgets_its_old_inbox_ids_by_itself(
    settings_for: Callable[..., Any],
) -> None:
    settings = settings_for(UserSettings, inbox_keep_hours=2, inbox_forget_interval_s=0.1)
    async with in_process(create_user_app(settings)) as users:
        old, recent = uuid4(), uuid4()
        await add_inbox_ids(users, {old: 3, recent: 1})

        async def forgotten() -> bool:
            return old not in await inbox_ids(users)

        await eventually(forgotten)
        assert recent in await inbox_ids(users)


async def test_a_service_warns_when_its_inbox_keeps_ids_for_less_than_kafka_may_redeliver(
    settings_for: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="common.runtime")

    async with in_process(create_user_app(settings_for(UserSettings, inbox_keep_hours=2))):
        pass

    assert "INBOX_KEEP_HOURS is 2: Kafka may deliver a message again up to 336 hours" in caplog.text


async def test_a_rolled_back_savepoint_takes_its_staged_messages_and_no_other(
    settings_for: Callable[..., Any], infra: Infra
) -> None:
    async with in_process(create_user_app(settings_for(UserSettings))) as users:
        sessions = users.runtime.sessionmaker
        kept, dropped, also_kept = (
            UserRegistered(user_id=uuid4(), name=name, email="x@example.com", role="Customer")
            for name in ("Kept", "Dropped", "Also kept")
        )
        async with batch_transaction(sessions):
            async with sessions.begin() as session:
                stage(session, UserOutbox, kept)
            with contextlib.suppress(RuntimeError):
                async with sessions.begin() as session:
                    stage(session, UserOutbox, dropped)
                    raise RuntimeError("this use case fails")
            async with sessions.begin() as session:
                stage(session, UserOutbox, also_kept)

        ours = {event.key() for event in (kept, dropped, also_kept)}
        records = await read_topic(
            infra,
            USERS_EVENTS.name,
            until=lambda rs: {kept.key(), also_kept.key()} <= {r.key for r in rs},
        )
        assert sorted(r.key for r in records if r.key in ours) == sorted(
            [kept.key(), also_kept.key()]
        )


async def test_a_relay_takes_nothing_while_another_holds_the_outbox(
    settings_for: Callable[..., Any],
) -> None:
    async with in_process(create_user_app(settings_for(UserSettings))) as users:
        relay, sessions = users.runtime.relay, users.runtime.sessionmaker
        event = UserRegistered(user_id=uuid4(), name="Di", email="di@example.com", role="Customer")
        async with sessions.begin() as other_replica:
            assert await other_replica.scalar(select(func.pg_try_advisory_xact_lock(RELAY_LOCK)))
            async with sessions.begin() as session:
                stage(session, UserOutbox, event)
            assert await relay.publish_pending() == 0
            async with sessions() as session:
                assert await session.scalar(select(func.count()).select_from(UserOutbox)) == 1
        published_before = relay.published
        await eventually(lambda: relay.published > published_before)  # the poll finds it
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(UserOutbox)) == 0


async def test_two_replicas_relaying_one_outbox_keep_each_keys_order(
    settings_for: Callable[..., Any], infra: Infra
) -> None:
    """Two processes of one service share its database, so both relays see every row; the
    messages of each key still reach Kafka once each, in the order they were committed."""
    # small relay batches, so that two relays free to run at once would split every burst
    first = settings_for(UserSettings, relay_batch_size=3, relay_idle_poll_s=0.02)
    second = first.model_copy(update={"consumer_replica": 2})
    keys = [uuid4() for _ in range(4)]
    async with (
        in_process(create_user_app(first)) as one,
        in_process(create_user_app(second)) as two,
    ):
        relays = (one.runtime.relay, two.runtime.relay)
        for burst in range(20):  # bursts of 6, each key's messages numbered in commit order
            committing = one if burst % 2 else two  # each commit wakes its own process's relay
            async with committing.runtime.sessionmaker.begin() as session:
                for n in range(burst * 6, burst * 6 + 6):
                    key = keys[n % len(keys)]
                    updated = UserUpdated(user_id=key, name=f"n{n}", email="k@ex.com")
                    stage(session, UserOutbox, updated)
            await asyncio.sleep(0.005)
        assert await eventually(lambda: sum(relay.published for relay in relays) >= 120)

    wanted = {str(key).encode() for key in keys}
    records = await read_topic(
        infra,
        USERS_EVENTS.name,
        lambda found: sum(r.key in wanted for r in found) >= 120,
    )
    for key in keys:
        names = [
            json.loads(r.value or b"{}")["data"]["name"]
            for r in records
            if r.key == str(key).encode()
        ]
        numbers = [int(name[1:]) for name in names]
        assert numbers == sorted(numbers) and len(numbers) == len(set(numbers)) == 30, numbers


async def test_a_replica_stalled_while_it_holds_the_relays_lock_holds_it_only_so_long(
    settings_for: Callable[..., Any], infra: Infra
) -> None:
    """A replica that hangs mid-round (SIGSTOP, a stuck call) holds the relay's lock in an
    open transaction; after the stall limit the server ends it, and the other replica's relay
    publishes the rows the stalled one had taken."""
    settings = settings_for(UserSettings, relay_idle_poll_s=3600)  # rounds only when woken
    stuck = asyncio.Event()

    class Hung:
        async def get(self) -> AIOKafkaProducer:
            stuck.set()
            await asyncio.Event().wait()  # forever
            raise AssertionError("unreachable")

    async with in_process(create_user_app(settings)) as users:
        relay, sessions = users.runtime.relay, users.runtime.sessionmaker
        hung: Any = Hung()
        stalled = OutboxRelay(settings.service_database_url(), UserOutbox, hung, stall_limit_s=1.5)
        async with relay._round:  # the running relay waits while the stalled one takes the rows
            async with sessions.begin() as session:
                stage(session, UserOutbox, _registered("Stuck"))
            round_ = asyncio.create_task(stalled.publish_pending())
            await asyncio.wait_for(stuck.wait(), 10)
        try:
            assert await relay.publish_pending() == 0  # the lock is held: nothing to take
            assert await eventually(relay.publish_pending, timeout_s=15) == 1
        finally:
            round_.cancel()
            with contextlib.suppress(BaseException):
                await round_
            await stalled.close()
    records = await read_topic(
        infra, USERS_EVENTS.name, lambda found: any(b"Stuck" in (r.value or b"") for r in found)
    )
    assert [r for r in records if b"Stuck" in (r.value or b"")]


async def test_a_relay_round_that_kafka_fails_leaves_its_rows_for_the_next_round(
    settings_for: Callable[..., Any], infra: Infra
) -> None:
    async with in_process(create_user_app(settings_for(UserSettings))) as users:
        relay, sessions = users.runtime.relay, users.runtime.sessionmaker
        for _ in range(6):  # rounds enough for psycopg to prepare what the relay repeats
            async with sessions.begin() as session:
                stage(session, UserOutbox, _registered("Ann"))
            await relay.publish_pending()
        producer = relay._producer
        working = producer.get
        failures = 0

        async def away_once() -> AIOKafkaProducer:
            nonlocal failures
            if failures == 0:
                failures += 1
                raise KafkaConnectionError("the broker is away")
            return await working()

        producer.get = away_once  # type: ignore[method-assign]
        event = _registered("Eve")
        async with sessions.begin() as session:
            stage(session, UserOutbox, event)
        with contextlib.suppress(KafkaConnectionError):
            await relay.publish_pending()  # this round or the loop's meets the failure

        # The failed round took the row in a transaction it rolled back, so a later round
        # publishes it (left open, the next round would have committed the row's deletion;
        # and the rollback must leave the relay able to run its next rounds).
        records = await read_topic(
            infra, USERS_EVENTS.name, until=lambda rs: event.key() in {r.key for r in rs}
        )
        assert failures == 1
        assert event.key() in {record.key for record in records}
        await eventually(lambda: _outbox_empty(sessions))


async def test_a_relay_takes_its_rows_by_the_index_even_when_it_planned_on_an_empty_outbox(
    settings_for: Callable[..., Any],
) -> None:
    # A vacuumed, empty outbox makes a scan of the table the cheapest plan, and the prepared
    # plan is kept while the table fills with the deleted rows of every round until the next
    # vacuum.
    async with in_process(create_user_app(settings_for(UserSettings))) as users:
        relay = users.runtime.relay
        async with relay._round:
            connection = await relay._connect()
            await connection.execute("VACUUM outbox")
            explained = await connection.execute(f"EXPLAIN EXECUTE {_TAKE}")
            plan = "\n".join(row[0] for row in await explained.fetchall())
        assert "Seq Scan" not in plan and "Index" in plan, plan


def _registered(name: str) -> UserRegistered:
    return UserRegistered(
        user_id=uuid4(), name=name, email=f"{name.lower()}@example.com", role="Customer"
    )


async def _outbox_empty(sessions: Any) -> bool:
    async with sessions() as session:
        return bool(await session.scalar(select(func.count()).select_from(UserOutbox)) == 0)


def counter(text: str, name: str) -> int:
    line = next(line for line in text.splitlines() if line.startswith(f"shop_{name}{{"))
    return int(float(line.rsplit(" ", 1)[1]))


async def test_metrics_count_what_the_consumers_and_the_relay_did(
    settings_for: Callable[..., Any],
) -> None:
    users_app = create_user_app(settings_for(UserSettings))
    notifications_app = create_notification_app(
        settings_for(NotificationSettings, sending_enabled=False)
    )
    async with in_process(users_app) as users, in_process(notifications_app) as notifications:
        user = await user_services.register_user(
            users.runtime.sessionmaker,
            users_app.state.passwords,
            name="Bo",
            email=f"{unique('bo')}@example.com",
            password="correct horse",
        )
        assert await eventually(lambda: count_notifications(notifications, user.id)) == 1
        offsets = notifications.runtime.consumers[0].offsets
        await eventually(lambda: offsets.commits > 0)

        consumed = (await notifications.http.get("/metrics")).text
        produced = (await users.http.get("/metrics")).text

    assert 'service="notification_svc"' in consumed
    assert counter(consumed, "consumer_messages_applied_total") >= 1
    assert counter(consumed, "consumer_batches_total") >= 1
    assert counter(consumed, "consumer_offset_commits_total") >= 1
    assert counter(consumed, "consumer_runs_applied_together_total") >= 0  # exposed
    assert counter(consumed, "consumer_use_case_calls_total") >= 1
    assert counter(produced, "outbox_published_total") >= 1


def registered(user_id: UUID) -> UserRegistered:
    return UserRegistered(user_id=user_id, name="Di", email="di@example.com", role="Customer")


async def test_offsets_reach_the_broker_once_an_interval_and_when_the_service_stops(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    settings = settings_for(
        NotificationSettings,
        sending_enabled=False,
        consumer_commit_interval_ms=60_000,
        consumer_batch_window_ms=0,
    )
    user_id = uuid4()  # one key: every record on one partition
    async with in_process(create_notification_app(settings)) as notifications:
        placed: list[RecordMetadata] = []
        for _ in range(3):
            envelope = await send(producer, registered(user_id), acks=placed)
            await in_inbox(notifications.runtime, NotificationInbox, envelope)
        partition = TopicPartition(USERS_EVENTS.name, placed[0].partition)
        # The second record's batch ended before the third's began: committing once per batch
        # would have moved the group past it by now.
        during = await committed_offset(infra.kafka_access, settings.consumer_group, partition)
        assert during is None or during <= placed[1].offset
    after = await committed_offset(infra.kafka_access, settings.consumer_group, partition)
    assert after == placed[2].offset + 1  # committed as the service stopped


async def test_records_right_behind_a_batch_join_it_and_each_is_applied_once(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    settings = settings_for(
        NotificationSettings,
        sending_enabled=False,
        consumer_batch_window_ms=1_000,
        consumer_batch_window_busy=0,  # every batch right after another counts as under load
        consumer_fetch_wait_ms=0,  # each record fetched as it comes: the window gathers them
    )
    async with in_process(create_notification_app(settings)) as notifications:
        warm_up = await send(producer, registered(uuid4()))
        # caught up, a batch just ended
        await in_inbox(notifications.runtime, NotificationInbox, warm_up)
        users = [uuid4() for _ in range(5)]
        acks: list[RecordMetadata] = []
        burst = [await send(producer, registered(user_id), acks=acks) for user_id in users]
        for envelope in burst:
            await in_inbox(notifications.runtime, NotificationInbox, envelope)
        assert notifications.runtime.consumers[0].stats.extended >= 1
        for user_id in users:
            assert await count_notifications(notifications, user_id) == 1
    for where in acks:
        partition = TopicPartition(where.topic, where.partition)
        committed = await committed_offset(infra.kafka_access, settings.consumer_group, partition)
        assert committed is not None and committed > where.offset


async def test_a_fetch_wait_gathers_records_arriving_apart_into_one_batch(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer
) -> None:
    # What notification_svc and inventory_svc do off the order's path: the broker holds their
    # fetch, so records arriving 100 ms apart come as one or two batches, not one each.
    settings = settings_for(
        NotificationSettings,
        sending_enabled=False,
        consumer_batch_window_ms=0,  # no gathering on the consumer's side
        consumer_fetch_wait_ms=2_000,
    )
    async with in_process(create_notification_app(settings)) as notifications:
        warm_up = await send(producer, registered(uuid4()))
        await in_inbox(notifications.runtime, NotificationInbox, warm_up)
        stats = notifications.runtime.consumers[0].stats
        before = stats.batches
        users = [uuid4() for _ in range(5)]
        for user_id in users:
            await send(producer, registered(user_id))
            await asyncio.sleep(0.1)
        for user_id in users:
            assert await eventually(lambda u=user_id: count_notifications(notifications, u)) == 1
        assert stats.batches - before <= 2


async def test_the_lag_gauge_rises_while_a_consumer_is_stalled_and_falls_once_it_goes_on(
    settings_for: Callable[..., Any],
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    going_on, entered = asyncio.Event(), asyncio.Event()
    welcome = notification_services.welcome_user

    async def stalled(*args: Any) -> None:
        entered.set()
        await going_on.wait()
        await welcome(*args)

    monkeypatch.setattr(notification_services, "welcome_user", stalled)
    # offsets committed as each batch commits: once a handler is entered, every batch before
    # its own is committed, and the group's lag stays put until it goes on
    settings = settings_for(
        NotificationSettings,
        sending_enabled=False,
        metrics_sample_interval_s=0.2,
        consumer_commit_interval_ms=0,
    )
    async with in_process(create_notification_app(settings)) as notifications:
        runtime = notifications.runtime

        def lag() -> float:
            return sum(
                sample.value
                for family in runtime.metrics.registry.collect()
                if family.name == "shop_consumer_lag"
                for sample in family.samples
                if sample.labels["topic"] == USERS_EVENTS.name
            )

        await send(producer, registered(uuid4()))
        await eventually(entered.is_set)  # a batch with the topic's first UserRegistered
        group = {settings.consumer_group: [USERS_EVENTS]}
        stalled_at = (await consumer_lag(settings.kafka_access(), group))[settings.consumer_group]
        assert stalled_at >= 1
        for _ in range(5):
            await send(producer, registered(uuid4()))
        await eventually(lambda: lag() >= stalled_at + 5)
        going_on.set()
        await eventually(lambda: lag() == 0, timeout_s=60)
        # the gauges of the database were sampled too: the six messages applied are in the inbox
        gauge = runtime.metrics.registry.get_sample_value
        assert await eventually(
            lambda: (gauge("shop_inbox_rows", {"service": "notification_svc"}) or 0) >= 6
        )
