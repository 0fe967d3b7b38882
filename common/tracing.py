"""Distributed traces with OpenTelemetry, their W3C trace context carried through the outbox and
Kafka: a request's span in the gateway, then each service's batch and run spans, joined hop by
hop through the ``traceparent`` header of every record.

Off unless ``SHOP_TRACING=1``: the API's no-op tracer then records nothing and no header is
written. On, the SDK is configured by the standard variables: ``OTEL_SERVICE_NAME`` (default:
the service's package name), ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG``, and
``OTEL_TRACES_EXPORTER`` with its exporter's own: Zipkin's by default (``http://localhost:9411``,
the Zipkin that ``SHOP_TRACING=1 make up`` starts), or OTLP for a collector elsewhere.
"""

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from uuid import UUID

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord
    from opentelemetry.sdk.trace.export import SpanExporter

    from common.handlers import Routed

TRACEPARENT = "traceparent"
"""The one trace header read from a record (``tracestate`` is neither read nor carried on)."""

tracer = trace.get_tracer("shop")

_causes: ContextVar[Mapping[UUID, str] | None] = ContextVar("trace_causes", default=None)
"""The ``traceparent`` each message of the run being applied came with, by envelope id: a
message staged as caused by one of them carries it on (:func:`traceparent_for`)."""


def enabled() -> bool:
    return os.environ.get("SHOP_TRACING", "") not in ("", "0")


def configure(service_name: str) -> None:
    """Install the SDK's tracer provider and its exporter (:func:`exporter`) when tracing is
    on."""
    if not enabled():
        return
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(exporter()))
    trace.set_tracer_provider(provider)
    PsycopgInstrumentor().instrument(enable_commenter=False, enable_attribute_commenter=False)


EXPORTERS = ("zipkin", "otlp", "console")


def exporter() -> "SpanExporter":
    """The exporter ``OTEL_TRACES_EXPORTER`` names: ``zipkin`` (the default here, for the
    local stack's Zipkin; ``OTEL_EXPORTER_ZIPKIN_ENDPOINT``), ``otlp`` (OTLP over HTTP with
    protobuf, for a collector elsewhere; ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` and ``OTEL_EXPORTER_OTLP_HEADERS``) or ``console``."""
    name = os.environ.get("OTEL_TRACES_EXPORTER", "zipkin").strip().lower()
    if name == "zipkin":
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        return ZipkinExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER: {name!r} is not one of {', '.join(EXPORTERS)}")


class _SendOnly(TraceContextTextMapPropagator):
    """W3C trace context written on what a process sends, never read from what it receives."""

    def extract(
        self,
        carrier: Any,
        context: Context | None = None,
        getter: Any = None,
    ) -> Context:
        return context if context is not None else Context()


def start_traces_here() -> None:
    """For the public edge (the gateway): a client's ``traceparent`` is ignored, so that no
    client chooses what is sampled or which trace its request joins; what the gateway sends
    carries its own."""
    propagate.set_global_textmap(_SendOnly())


def untraced() -> AbstractContextManager[object]:
    """For a background loop (the relay, a sweep, a sampler): its database statements are
    not traced, or every round of it would be a trace of its own."""
    if not enabled():
        return nullcontext()
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    return suppress_instrumentation()


def current_traceparent() -> str | None:
    """The current span's W3C ``traceparent``; None when no span records (tracing off)."""
    if not enabled():
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)


def traceparent_for(causation_id: UUID | None) -> str | None:
    """What a message staged now carries on: its cause's context when the cause is one of the
    run's messages (a set-based run spans many), else the current span's."""
    if not enabled():
        return None
    if causation_id is not None:
        found = (_causes.get() or {}).get(causation_id)
        if found is not None:
            return found
    return current_traceparent()


def context_of(headers: Iterable[tuple[str, bytes | None]] | None) -> Context | None:
    """The producer's context that a record's first ``traceparent`` header carries, if it is a
    valid W3C one; a forged or broken header is no context at all."""
    for name, value in headers or ():
        if name == TRACEPARENT and value:
            carrier = {TRACEPARENT: value.decode(errors="replace")}
            context = propagate.extract(carrier)
            return context if trace.get_current_span(context).get_span_context().is_valid else None
    return None


def traceparent_of(context: Context) -> str | None:
    """``context`` written anew as a W3C ``traceparent`` (55 characters): what a message carries
    on is never the raw header its cause came with."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier.get(TRACEPARENT)


def link_to(context: Context) -> Link:
    return Link(trace.get_current_span(context).get_span_context())


@contextmanager
def run_span(
    name: str,
    contexts: list[tuple[UUID, Context | None]],
    attributes: Mapping[str, str | int],
) -> Iterator[Span]:
    """A span for the messages of one run: a child of its message's producer where it has one
    message, else of the batch's span with a link to each message's producer. ``contexts``
    holds each message's envelope id and producer context (:func:`context_of`)."""
    if len(contexts) == 1 and contexts[0][1] is not None:
        batch = trace.get_current_span().get_span_context()
        with tracer.start_as_current_span(
            name,
            context=contexts[0][1],
            kind=SpanKind.CONSUMER,
            links=[Link(batch)],
            attributes=attributes,
        ) as span:
            yield span
        return
    links = [link_to(context) for _, context in contexts if context is not None]
    causes = {id_: traceparent_of(context) for id_, context in contexts if context is not None}
    token = _causes.set({id_: parent for id_, parent in causes.items() if parent is not None})
    try:
        with tracer.start_as_current_span(
            name, kind=SpanKind.CONSUMER, links=links, attributes=attributes
        ) as span:
            yield span
    finally:
        _causes.reset(token)


def batch_span(
    service_name: str, records: "Sequence[ConsumerRecord[bytes, bytes]]"
) -> AbstractContextManager[object]:
    """A consumed batch's span, linked to each record's producer (nothing when tracing is off)."""
    if not enabled():
        return nullcontext()
    links = [
        link_to(context)
        for record in records
        if (context := context_of(record.headers)) is not None
    ]
    return tracer.start_as_current_span(
        f"{service_name} batch",
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={"messaging.batch.message_count": len(records)},
    )


def consumer_run_span(run: "Sequence[Routed]") -> AbstractContextManager[object]:
    """A run's span (:func:`run_span`) with its messaging attributes; nothing when tracing is
    off."""
    if not enabled():
        return nullcontext()
    first = run[0]
    attributes: dict[str, str | int] = {
        "messaging.destination.name": first.record.topic,
        "messaging.batch.message_count": len(run),
    }
    if len(run) == 1:
        attributes["messaging.message.id"] = str(first.envelope.id)
        attributes["messaging.kafka.message.key"] = (first.record.key or b"").decode(
            errors="replace"
        )
        attributes["shop.correlation_id"] = str(first.envelope.correlation_id)
    return run_span(
        first.envelope.type,
        [(item.envelope.id, context_of(item.record.headers)) for item in run],
        attributes,
    )
