"""The trace context as the shop carries it: written on what it sends, read where it is
trusted."""

from uuid import uuid4

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from common import tracing
from common.outbox import _kafka_headers_of

FORGED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_the_public_edge_ignores_a_clients_trace_context_and_still_writes_its_own() -> None:
    edge = tracing._SendOnly()
    assert (
        not trace.get_current_span(edge.extract({"traceparent": FORGED}))
        .get_span_context()
        .is_valid
    )
    trusted = TraceContextTextMapPropagator().extract({"traceparent": FORGED})
    assert trace.get_current_span(trusted).get_span_context().is_valid
    with TracerProvider().get_tracer("t").start_as_current_span("request") as span:
        carrier: dict[str, str] = {}
        edge.inject(carrier)
    assert carrier["traceparent"].startswith(f"00-{span.get_span_context().trace_id:032x}-")


def test_a_records_trace_context_is_read_from_its_headers() -> None:
    context = tracing.context_of([("type", b"X"), ("traceparent", FORGED.encode())])
    assert context is not None
    assert f"{trace.get_current_span(context).get_span_context().trace_id:032x}" == FORGED[3:35]
    assert tracing.context_of([("type", b"X"), ("traceparent", None)]) is None


def test_an_outbox_row_with_headers_the_relay_cannot_read_goes_out_with_its_type() -> None:
    correlation = uuid4()
    readable = _kafka_headers_of([["type", "WA=="], ["none", None]], "X", correlation)
    assert readable == [("type", b"X"), ("none", None)]
    for odd in ({"traceparent": FORGED}, "text", 7):
        assert _kafka_headers_of(odd, "OrderPlaced", correlation) == [
            ("type", b"OrderPlaced"),
            ("correlation_id", str(correlation).encode()),
        ]
