"""The consumer's retry and dead-letter rules, with a stand-in producer (no broker needed)."""

from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from aiokafka import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families
from psycopg import errors
from sqlalchemy.exc import DBAPIError, OperationalError

from common.consumer import BatchConsumer
from common.dead_letters import DeadLetter, reason_class
from common.failures import Backoff, is_infrastructure_error
from common.handlers import Routed, runs_of_one_type
from common.metrics import ServiceMetrics
from common.settings import ServiceSettings
from schemas.envelope import Envelope, encode
from schemas.payments import REFUNDED_BEFORE_V2, PaymentRefunded, PaymentRefundedV1
from schemas.users import UserRegistered, UserUpdated
from tests.conftest import consumer_record


class Settings(ServiceSettings):
    service_name = "test_svc"
    default_http_port = 0


class FakeProducer:
    """Records what would have gone to Kafka."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, list[tuple[str, bytes]]]] = []

    async def get(self) -> "FakeProducer":
        return self

    async def send_and_wait(self, topic: str, value: bytes | None, key: Any, headers: Any) -> None:
        self.sent.append((topic, value, headers))

    async def reset(self) -> None:
        pass


def record(
    value: bytes | None, offset: int = 7, headers: tuple[tuple[str, bytes], ...] = ()
) -> ConsumerRecord[bytes, bytes]:
    return consumer_record("users.events", value, partition=3, offset=offset, headers=headers)


def registered() -> bytes:
    event = UserRegistered(user_id=uuid4(), name="Ann", email="ann@example.com", role="Customer")
    return encode(event.envelope())


def consumer(handler: Any) -> tuple[BatchConsumer, FakeProducer]:
    producer = FakeProducer()
    settings = Settings(handler_attempts=3, retry_backoff_s=0)
    return BatchConsumer(settings, {UserRegistered: handler}, producer), producer  # type: ignore[arg-type]


async def test_failing_handler_is_retried_then_dead_lettered_with_reason_and_origin() -> None:
    calls: list[Envelope] = []

    async def broken(envelope: Envelope, event: UserRegistered) -> None:
        calls.append(envelope)
        raise RuntimeError("boom")

    subject, producer = consumer(broken)
    await subject.apply_batch([record(registered())])
    assert len(calls) == 3
    [(topic, _, headers)] = producer.sent
    found = dict(headers)
    assert topic == "test_svc.dlq"
    assert found["dlq.reason"] == b"RuntimeError: boom"
    assert (found["dlq.topic"], found["dlq.partition"], found["dlq.offset"]) == (
        b"users.events",
        b"3",
        b"7",
    )
    assert found["dlq.attempts"] == b"3"


async def test_handler_succeeding_on_retry_is_not_dead_lettered() -> None:
    calls = 0

    async def flaky(envelope: Envelope, event: UserRegistered) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("once")

    subject, producer = consumer(flaky)
    await subject.apply_batch([record(registered())])
    assert calls == 2 and producer.sent == []
    assert subject.stats.applied == 1 and subject.stats.retried == 1


async def test_infrastructure_error_is_raised_for_redelivery_not_dead_lettered() -> None:
    async def database_down(envelope: Envelope, event: UserRegistered) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError())

    subject, producer = consumer(database_down)
    with pytest.raises(OperationalError):
        await subject.apply_batch([record(registered())])
    assert producer.sent == []


@pytest.mark.parametrize(
    "error",
    [
        errors.DeadlockDetected("deadlock detected"),
        errors.SerializationFailure("could not serialize access"),
        errors.AdminShutdown("terminating connection due to administrator command"),
        errors.CannotConnectNow("the database system is starting up"),
        errors.TooManyConnections("too many clients"),
        errors.LockNotAvailable("could not obtain lock"),
        psycopg.OperationalError("connection failed: Connection refused"),
        DBAPIError("SELECT 1", {}, errors.DeadlockDetected("deadlock detected")),
        OperationalError("SELECT 1", {}, errors.AdminShutdown("terminating connection")),
        ConnectionResetError(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_passing_failure_of_the_database_is_infrastructure_as_raised_or_wrapped(
    error: BaseException,
) -> None:
    assert is_infrastructure_error(error)


@pytest.mark.parametrize(
    "error",
    [
        errors.ProgramLimitExceeded("index row size exceeds btree maximum"),
        errors.UniqueViolation("duplicate key value"),
        OperationalError("INSERT", {}, errors.ProgramLimitExceeded("index row size")),
        RuntimeError("boom"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_an_error_that_fails_every_try_alike_is_not_infrastructure(error: BaseException) -> None:
    assert not is_infrastructure_error(error)


def test_the_pause_before_a_redelivery_doubles_to_its_cap_and_starts_over_after_success() -> None:
    backoff = Backoff(0.2, 2.0)
    pauses = [backoff.failed() for _ in range(6)]
    backoff.succeeded()
    assert pauses == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert backoff.failed() == 0.2


async def test_infrastructure_errors_in_a_row_grow_the_pause_and_a_batch_applied_resets_it() -> (
    None
):
    failures = 3

    async def deadlocked_three_times(envelope: Envelope, event: UserRegistered) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise errors.DeadlockDetected("deadlock detected")

    subject, producer = consumer(deadlocked_three_times)
    batch = [record(registered())]
    for _ in range(3):
        with pytest.raises(errors.DeadlockDetected):
            await subject.apply_batch(batch)
    assert subject.backoff.failures == 3
    await subject.apply_batch(batch)
    assert subject.backoff.failures == 0
    assert producer.sent == [] and subject.stats.applied == 1


async def test_poison_goes_to_dead_letters_and_batch_goes_on() -> None:
    seen: list[UserRegistered] = []

    async def remember(envelope: Envelope, event: UserRegistered) -> None:
        seen.append(event)

    subject, producer = consumer(remember)
    await subject.apply_batch(
        [record(b"\xff\xfe"), record(None), record(b'{"id": 1}'), record(registered())]
    )
    assert len(seen) == 1
    assert [dict(headers)["dlq.reason"][:20] for _, _, headers in producer.sent] == [
        b"not a valid envelope",
        b"empty value (tombsto",
        b"not a valid envelope",
    ]


async def test_known_types_without_a_handler_are_skipped() -> None:
    async def never(envelope: Envelope, event: UserRegistered) -> None:
        raise AssertionError("not for this handler")

    subject, producer = consumer(never)
    other = UserUpdated(user_id=uuid4(), name="Ann", email="ann@example.com")
    await subject.apply_batch([record(encode(other.envelope()))])
    assert subject.stats.skipped == 1 and producer.sent == []


async def test_unknown_type_is_dead_lettered() -> None:
    async def never(envelope: Envelope, event: UserRegistered) -> None:
        raise AssertionError

    subject, producer = consumer(never)
    raw = registered().replace(b'"UserRegistered"', b'"UserTeleported"')
    await subject.apply_batch([record(raw)])
    assert b"no contract for type 'UserTeleported'" in dict(producer.sent[0][2])["dlq.reason"]


async def test_a_type_this_service_ignores_is_skipped_by_its_header_without_parsing() -> None:
    async def never(envelope: Envelope, event: UserRegistered) -> None:
        raise AssertionError

    subject, producer = consumer(never)
    await subject.apply_batch([record(b"not even json", headers=(("type", b"UserUpdated"),))])
    assert subject.stats.skipped == 1 and producer.sent == []


async def test_a_type_header_naming_no_contract_does_not_skip_the_checks() -> None:
    async def never(envelope: Envelope, event: UserRegistered) -> None:
        raise AssertionError

    subject, producer = consumer(never)
    await subject.apply_batch([record(b"not even json", headers=(("type", b"UserTeleported"),))])
    assert subject.stats.skipped == 0
    assert dict(producer.sent[0][2])["dlq.reason"].startswith(b"not a valid envelope")


def routed(message: UserRegistered | UserUpdated) -> Routed:
    envelope = message.envelope()
    return Routed(record(encode(envelope)), envelope, message, handler=None)  # type: ignore[arg-type]


def test_runs_end_where_the_type_changes_or_an_aggregate_comes_again() -> None:
    ann, bob = uuid4(), uuid4()

    def registered_as(user_id: UUID) -> UserRegistered:
        return UserRegistered(user_id=user_id, name="A", email="a@example.com", role="Customer")

    batch = [
        routed(registered_as(ann)),
        routed(registered_as(bob)),
        routed(registered_as(ann)),  # ann again: a new run, applied after the first
        routed(UserUpdated(user_id=bob, name="B", email="b@example.com")),
        routed(registered_as(uuid4())),
    ]

    runs = runs_of_one_type(batch)

    assert [[batch.index(item) for item in run] for run in runs] == [[0, 1], [2], [3], [4]]


def refund_consumer(handler: Any) -> tuple[BatchConsumer, FakeProducer]:
    producer = FakeProducer()
    settings = Settings(handler_attempts=1, retry_backoff_s=0)
    return BatchConsumer(settings, {PaymentRefunded: handler}, producer), producer  # type: ignore[arg-type]


def refunded_v1() -> PaymentRefundedV1:
    return PaymentRefundedV1(
        payment_id=uuid4(), order_id=uuid4(), user_id=uuid4(), amount=Decimal(5), gateway_id="g"
    )


async def test_an_older_version_is_applied_as_its_upcaster_makes_it() -> None:
    seen: list[Any] = []

    async def remember(envelope: Envelope, event: Any) -> None:
        seen.append((envelope.version, event))

    subject, producer = refund_consumer(remember)
    await subject.apply_batch([record(encode(refunded_v1().envelope()))])
    assert [(version, type(event), event.reason) for version, event in seen] == [
        (1, PaymentRefunded, REFUNDED_BEFORE_V2)
    ]
    assert producer.sent == []


async def test_an_unknown_version_is_dead_lettered_naming_the_versions_known() -> None:
    async def never(envelope: Envelope, event: Any) -> None:
        raise AssertionError

    subject, producer = refund_consumer(never)
    unknown = encode(refunded_v1().envelope()).replace(b'"version":1', b'"version":9')
    await subject.apply_batch([record(unknown)])
    reason = dict(producer.sent[0][2])["dlq.reason"]
    assert reason == b"no contract for type 'PaymentRefunded' version 9 (known versions: 1, 2)"


def test_a_handler_written_for_an_older_version_is_refused() -> None:
    async def old_handler(envelope: Envelope, event: PaymentRefundedV1) -> None:
        raise AssertionError

    with pytest.raises(ValueError, match="newest version"):
        BatchConsumer(Settings(), {PaymentRefundedV1: old_handler}, FakeProducer())  # type: ignore[arg-type]


async def test_an_upcaster_that_fails_dead_letters_its_record_and_the_batch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: PaymentRefundedV1) -> PaymentRefunded:
        raise KeyError("reason")

    monkeypatch.setattr(PaymentRefundedV1, "upcast", broken)
    seen: list[Any] = []

    async def remember(envelope: Envelope, event: Any) -> None:
        seen.append(event)

    subject, producer = refund_consumer(remember)
    old = refunded_v1()
    new = PaymentRefunded(**old.model_dump(), reason="Changed my mind")
    await subject.apply_batch(
        [record(encode(old.envelope())), record(encode(new.envelope()), offset=8)]
    )
    assert [event.reason for event in seen] == ["Changed my mind"]
    reason = dict(producer.sent[0][2])["dlq.reason"]
    assert reason == b"PaymentRefunded v1 could not be upcast: KeyError: 'reason'"


async def test_a_type_header_naming_another_topics_message_is_not_believed() -> None:
    seen: list[UserRegistered] = []

    async def remember(envelope: Envelope, event: UserRegistered) -> None:
        seen.append(event)

    subject, producer = consumer(remember)
    await subject.apply_batch([record(registered(), headers=(("type", b"OrderPlaced"),))])
    assert len(seen) == 1 and subject.stats.skipped == 0 and producer.sent == []


async def test_a_batch_is_measured_and_its_dead_letters_counted_by_reason_once_it_is_done() -> None:
    async def fail_on_ann(envelope: Envelope, event: UserRegistered) -> None:
        if event.name == "Ann":
            raise RuntimeError("no Ann today")

    metrics = ServiceMetrics("test_svc")
    producer = FakeProducer()
    settings = Settings(handler_attempts=2, retry_backoff_s=0)
    subject = BatchConsumer(settings, {UserRegistered: fail_on_ann}, producer, metrics=metrics)  # type: ignore[arg-type]
    bo = UserRegistered(user_id=uuid4(), name="Bo", email="bo@example.com", role="Customer")
    await subject.apply_batch(
        [
            record(b"not json", offset=1),
            record(registered(), offset=2),
            record(encode(bo.envelope()), offset=3),
            record(registered().replace(b'"UserRegistered"', b'"UserTeleported"'), offset=4),
        ]
    )
    value = metrics.registry.get_sample_value

    def letters(reason: str) -> float | None:
        labels = {"service": "test_svc", "topic": "users.events", "reason": reason}
        return value("shop_dead_letters_total", labels)

    assert (letters("malformed"), letters("handler_failed"), letters("unknown_type")) == (1, 1, 1)
    assert value("shop_consumer_batch_records_sum", {"service": "test_svc"}) == 4
    assert value("shop_consumer_batch_seconds_count", {"service": "test_svc"}) == 1
    hops = {"service": "test_svc", "topic": "users.events"}
    assert value("shop_consumer_hop_seconds_count", hops) == 2  # the records handed to a handler
    parsed = {f.name for f in text_string_to_metric_families(metrics.render().decode())}
    assert {"shop_consumer_batch_seconds", "shop_dead_letters", "process_cpu_seconds"} <= parsed


@pytest.mark.parametrize(
    ("reason", "attempts", "expected"),
    [
        ("RuntimeError: no Ann today", 3, "handler_failed"),
        ("empty value (tombstone)", 0, "tombstone"),
        ("not a valid envelope: id: Field required", 0, "malformed"),
        ("no contract for type 'UserTeleported'", 0, "unknown_type"),
        (
            "no contract for type 'PaymentRefunded' version 9 (known versions: 1, 2)",
            0,
            "unknown_version",
        ),
        ("invalid UserRegistered v1 data: role: Input should be", 0, "invalid_data"),
        ("PaymentRefunded v1 could not be upcast: KeyError: 'reason'", 0, "upcast_failed"),
    ],
)
def test_a_dead_letters_reason_has_a_class(reason: str, attempts: int, expected: str) -> None:
    letter = DeadLetter(record(b"x"), reason, attempts)
    assert reason_class(letter) == expected
