"""Traces across the outbox and Kafka, on the real broker and database: a span in which user_svc
stages an event is the parent of the span in which notification_svc applies it."""

from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from common import tracing
from common.db import create_engine
from common.outbox import stage
from common.unit_of_work import create_sessionmaker
from notification_svc.app import create_app as create_notification_app
from notification_svc.settings import Settings as NotificationSettings
from schemas.topics import USERS_EVENTS
from schemas.users import UserUpdated
from tests.conftest import Infra, eventually, unique
from tests.integration.conftest import in_process, read_topic
from user_svc import services as user_services
from user_svc.app import create_app as create_user_app
from user_svc.models import Outbox as UserOutbox
from user_svc.settings import Settings as UserSettings

pytestmark = pytest.mark.integration

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on, its spans kept in memory (the SDK's provider is set once per process)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    monkeypatch.setenv("SHOP_TRACING", "1")
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


async def test_an_event_staged_in_a_span_is_applied_in_a_child_span_across_the_outbox_and_kafka(
    settings_for: Callable[..., Any], infra: Infra, spans: InMemorySpanExporter
) -> None:
    users_app = create_user_app(settings_for(UserSettings))
    notifications_app = create_notification_app(
        settings_for(NotificationSettings, sending_enabled=False, metrics_sample_interval_s=0.2)
    )
    email = f"{unique('tr')}@example.com"
    async with in_process(users_app) as users, in_process(notifications_app) as notifications:
        registry = notifications.runtime.metrics.registry

        def behind() -> float | None:
            lags = [
                s.value
                for f in registry.collect()
                if f.name == "shop_consumer_lag"
                for s in f.samples
            ]
            return sum(lags) if lags else None

        # caught up with the topic's past first, so that the event comes in a run of its own
        await eventually(lambda: behind() == 0, timeout_s=60)
        with tracing.tracer.start_as_current_span("register", kind=SpanKind.SERVER) as request:
            user = await user_services.register_user(
                users.runtime.sessionmaker,
                users_app.state.passwords,
                name="Tr",
                email=email,
                password="correct horse",
            )
        context = request.get_span_context()

        def applied() -> list[Any]:
            return [
                span
                for span in spans.get_finished_spans()
                if span.name == "UserRegistered"
                and span.context is not None
                and span.context.trace_id == context.trace_id
            ]

        (run,) = await eventually(applied)
        assert run.parent is not None and run.parent.span_id == context.span_id
        assert run.kind == SpanKind.CONSUMER

        def linked_batches() -> list[Any]:  # the batch's span ends after its run's, at commit
            return [
                batch
                for batch in spans.get_finished_spans()
                if batch.name == "notification_svc batch"
                and any(link.context.trace_id == context.trace_id for link in batch.links)
            ]

        assert await eventually(linked_batches)

    records = await read_topic(
        infra,
        USERS_EVENTS.name,
        lambda found: any(str(user.id).encode() == r.key for r in found),
    )
    ours = [r for r in records if r.key == str(user.id).encode()]  # at least once: maybe twice
    assert ours
    for record in ours:
        traceparent = dict(record.headers)[tracing.TRACEPARENT].decode()
        assert traceparent.startswith(f"00-{context.trace_id:032x}-")


async def test_without_tracing_no_trace_header_is_written(
    settings_for: Callable[..., Any], infra: Infra
) -> None:
    users_app = create_user_app(settings_for(UserSettings))
    async with in_process(users_app) as users:
        user = await user_services.register_user(
            users.runtime.sessionmaker,
            users_app.state.passwords,
            name="Un",
            email=f"{unique('un')}@example.com",
            password="correct horse",
        )
    records = await read_topic(
        infra, USERS_EVENTS.name, lambda found: any(str(user.id).encode() == r.key for r in found)
    )
    ours = [r for r in records if r.key == str(user.id).encode()]  # at least once: maybe twice
    assert ours and all(tracing.TRACEPARENT not in dict(record.headers) for record in ours)


async def test_a_trace_survives_a_crash_between_the_commit_and_the_relay(
    settings_for: Callable[..., Any], infra: Infra, spans: InMemorySpanExporter
) -> None:
    """The message is committed to the outbox inside a span by a process whose relay never ran;
    the next process's relay publishes it with that span's context."""
    settings = settings_for(UserSettings)
    async with in_process(create_user_app(settings)):
        pass  # its database, migrated
    engine = create_engine(settings.service_database_url())
    user_id = uuid4()
    with tracing.tracer.start_as_current_span("update") as span:
        async with create_sessionmaker(engine).begin() as session:
            updated = UserUpdated(user_id=user_id, name="Cy", email="cy@example.com")
            stage(session, UserOutbox, updated)
    await engine.dispose()  # committed; no relay ran
    context = span.get_span_context()
    async with in_process(create_user_app(settings)):
        records = await read_topic(
            infra,
            USERS_EVENTS.name,
            lambda found: any(str(user_id).encode() == r.key for r in found),
        )
    ours = [r for r in records if r.key == str(user_id).encode()]
    assert ours
    for record in ours:
        traceparent = dict(record.headers)[tracing.TRACEPARENT].decode()
        assert traceparent.startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
