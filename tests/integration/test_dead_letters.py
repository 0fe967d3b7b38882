"""Dead letters a person can handle: listed with reasons, re-driven to where they came from."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord

from notification_svc.app import create_app as create_notification_app
from notification_svc.settings import Settings as NotificationSettings
from schemas.envelope import encode
from schemas.topics import USERS_EVENTS, dead_letter_topic
from schemas.users import UserRegistered
from stack import cli, dlq
from tests.conftest import Infra, eventually
from tests.integration.conftest import in_process, read_topic


async def test_dead_letters_are_listed_with_reason_and_redriven_to_their_topic(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer, infra: Infra
) -> None:
    notifications = create_notification_app(
        settings_for(NotificationSettings, sending_enabled=False)
    )
    async with in_process(notifications):
        event = UserRegistered(
            user_id=uuid4(), name="Ann", email="ann@example.com", role="Customer"
        )
        broken = encode(event.envelope()).replace(b'"Customer"', b'"Emperor"')
        await producer.send_and_wait(USERS_EVENTS.name, broken, key=event.key())

        async def listed() -> list[dlq.DeadLetter]:
            letters = await dlq.read(infra.kafka_access, "notification_svc")
            return [letter for letter in letters if letter.value == broken]

        [letter] = await eventually(listed)
        assert letter.origin.startswith(f"{USERS_EVENTS.name}[")
        assert "invalid UserRegistered v1 data" in letter.headers["dlq.reason"]
        assert "role" in letter.headers["dlq.reason"]

    assert "dlq.written_at" in letter.headers  # the original's time, for the redrive's check
    assert abs(datetime.now(UTC) - letter.written_at) < timedelta(minutes=5)
    assert await dlq.redrive(infra.kafka_access, "notification_svc", {letter.offset}) == (1, [], [])
    records = await read_topic(
        infra,
        USERS_EVENTS.name,
        until=lambda rs: any(dict(r.headers).get("dlq.redriven_from") for r in rs),
    )
    [again] = [r for r in records if r.value == broken and dict(r.headers).get("dlq.redriven_from")]
    assert again.key == event.key()
    assert (
        dict(again.headers)["dlq.redriven_from"] == f"notification_svc.dlq@{letter.offset}".encode()
    )
    assert not any(name == "dlq.reason" for name, _ in again.headers)


async def _letter(
    producer: AIOKafkaProducer,
    reason: bytes,
    *headers: tuple[str, bytes | None],
    written: datetime | None = None,
) -> tuple[int, bytes]:
    """A dead letter of a new ``UserRegistered`` on ``users.events`` (written at ``written``,
    or now), written to notification_svc's dead-letter topic as its consumer would, with
    ``headers`` besides: its offset and value."""
    event = UserRegistered(user_id=uuid4(), name="Old", email="old@example.com", role="Customer")
    value = encode(event.envelope())
    kept = [("type", b"UserRegistered"), *((n, v) for n, v in headers if n == "blank")]
    original = await producer.send_and_wait(
        USERS_EVENTS.name,
        value,
        key=event.key(),
        headers=kept,
        timestamp_ms=int(written.timestamp() * 1000) if written else None,
    )
    sent = await producer.send_and_wait(
        dead_letter_topic("notification_svc").name,
        value,
        key=event.key(),
        headers=[
            ("type", b"UserRegistered"),
            ("dlq.topic", USERS_EVENTS.name.encode()),
            ("dlq.partition", str(original.partition).encode()),
            ("dlq.offset", str(original.offset).encode()),
            ("dlq.reason", reason),
            *headers,
        ],
    )
    return sent.offset, value


def redriven(records: list[ConsumerRecord[bytes, bytes]], value: bytes) -> list[Any]:
    """The records of ``value`` that a re-drive published (not the original)."""
    return [r for r in records if r.value == value and dict(r.headers).get("dlq.redriven_from")]


async def test_a_letter_that_is_not_the_record_it_names_is_never_redriven(
    producer: AIOKafkaProducer, infra: Infra
) -> None:
    """Whoever may write a dead-letter topic (the service itself) could forge a letter naming
    any topic; the admin's re-drive publishes only the record a letter names, unchanged."""
    offset, genuine = await _letter(producer, b"genuine")
    forged = genuine.replace(b"Old", b"Eve")
    letters = await dlq.read(infra.kafka_access, "notification_svc")
    [letter] = [letter for letter in letters if letter.offset == offset]
    headers = [(n, v.encode()) for n, v in letter.headers.items()]
    dead = dead_letter_topic("notification_svc").name
    other = await producer.send_and_wait(dead, forged, key=letter.key, headers=headers)
    elsewhere = [(n, b"payments.events" if n == "dlq.topic" else v) for n, v in headers]
    unconsumed = [(n, b"orders.commands" if n == "dlq.topic" else v) for n, v in headers]
    moved = await producer.send_and_wait(dead, genuine, key=letter.key, headers=elsewhere)
    strange = await producer.send_and_wait(dead, genuine, key=letter.key, headers=unconsumed)

    wanted = {other.offset, moved.offset, strange.offset}
    refused = await dlq.redrive(infra.kafka_access, "notification_svc", wanted)

    assert refused == (0, [], sorted(wanted))
    records = await read_topic(infra, USERS_EVENTS.name, until=lambda rs: False, timeout_s=2)
    assert not [r for r in records if r.value == forged]


async def _old_letter(producer: AIOKafkaProducer) -> tuple[int, bytes]:
    """A dead letter whose message was written longer ago than the inboxes keep ids: its
    offset and value."""
    written = datetime.now(UTC) - dlq.inbox_keep("notification_svc") - timedelta(hours=1)
    return await _letter(
        producer,
        b"a cause mended too late",
        ("dlq.written_at", str(int(written.timestamp() * 1000)).encode()),
        written=written,
    )


async def test_a_letter_cannot_make_an_old_record_look_new_nor_change_its_headers(
    producer: AIOKafkaProducer, infra: Infra
) -> None:
    """A letter forged by whoever may write the dead-letter topic: a genuine old record's key
    and value, a ``dlq.written_at`` of now and another type. The age that counts is the
    record's; what is published again is the record, with its own headers."""
    offset, value = await _old_letter(producer)
    letters = await dlq.read(infra.kafka_access, "notification_svc")
    [letter] = [letter for letter in letters if letter.offset == offset]
    now = str(int(datetime.now(UTC).timestamp() * 1000)).encode()
    forged_headers = [
        (n, now if n == "dlq.written_at" else b"PaymentRefunded" if n == "type" else v.encode())
        for n, v in letter.headers.items()
    ]
    dead = dead_letter_topic("notification_svc").name
    forged = await producer.send_and_wait(dead, value, key=letter.key, headers=forged_headers)

    refused = await dlq.redrive(infra.kafka_access, "notification_svc", {forged.offset})
    forced = await dlq.redrive(infra.kafka_access, "notification_svc", {forged.offset}, force=True)

    assert refused == (0, [forged.offset], [])
    assert forced == (1, [], [])
    records = await read_topic(infra, USERS_EVENTS.name, until=lambda rs: redriven(rs, value))
    [again] = redriven(records, value)
    assert ("type", b"UserRegistered") in again.headers
    assert not [n for n, _ in again.headers if n.startswith("dlq.") and n != "dlq.redriven_from"]


async def test_a_letter_older_than_the_inboxes_keep_ids_is_redriven_only_when_forced(
    producer: AIOKafkaProducer, infra: Infra
) -> None:
    offset, value = await _old_letter(producer)

    refused = await dlq.redrive(infra.kafka_access, "notification_svc", {offset})
    forced = await dlq.redrive(infra.kafka_access, "notification_svc", {offset}, force=True)

    assert refused == (0, [offset], [])
    assert forced == (1, [], [])
    records = await read_topic(infra, USERS_EVENTS.name, until=lambda rs: redriven(rs, value))
    assert [dict(r.headers)["dlq.redriven_from"] for r in redriven(records, value)] == [
        f"notification_svc.dlq@{offset}".encode()
    ]


async def test_the_redrive_command_names_the_refused_offsets_and_exits_1(
    producer: AIOKafkaProducer,
    infra: Infra,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    offset, _ = await _old_letter(producer)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", infra.kafka_bootstrap)

    code = await asyncio.to_thread(cli.main, ["dlq", "redrive", "notification_svc", str(offset)])

    output = capsys.readouterr().out
    assert code == 1, output
    assert "re-drove 0 message(s)" in output
    assert f"refused offsets {offset}:" in output and "--force" in output


async def test_a_letter_with_a_header_without_a_value_is_listed_and_redriven_with_it(
    producer: AIOKafkaProducer, infra: Infra
) -> None:
    offset, value = await _letter(producer, b"a header without a value", ("blank", None))

    letters = await dlq.read(infra.kafka_access, "notification_svc")
    [letter] = [letter for letter in letters if letter.offset == offset]
    assert letter.headers["dlq.reason"] == "a header without a value"
    assert await dlq.redrive(infra.kafka_access, "notification_svc", {offset}) == (1, [], [])
    records = await read_topic(infra, USERS_EVENTS.name, until=lambda rs: redriven(rs, value))
    [again] = redriven(records, value)
    assert ("blank", None) in again.headers and ("type", b"UserRegistered") in again.headers
