"""The trace context as the shop carries it: written on what it sends, read where it is
trusted."""

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from uuid import uuid4

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
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


def test_a_run_carries_on_only_valid_trace_contexts_written_anew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A forged or oversized ``traceparent`` on a record is no context: what the run stages
    carries the run's own, never the raw header (which could make every message it causes too
    large for the broker, and stall the outbox)."""
    monkeypatch.setattr(tracing, "tracer", TracerProvider().get_tracer("t"))  # not the global
    monkeypatch.setenv("SHOP_TRACING", "1")
    junk, valid, twice, upper = uuid4(), uuid4(), uuid4(), uuid4()
    records = {
        junk: [("traceparent", b"00-" + b"f" * 900_000)],
        valid: [("traceparent", FORGED.encode() + b" ")],  # spaces around are allowed
        twice: [("traceparent", FORGED.encode()), ("traceparent", b"junk")],
        upper: [("traceparent", FORGED.upper().encode())],  # not lower-case hex: invalid
    }
    contexts = [(id_, tracing.context_of(headers)) for id_, headers in records.items()]
    assert [context is None for _, context in contexts] == [True, False, False, True]
    with tracing.run_span("OrderPlaced", contexts, {}) as run:
        own = tracing.traceparent_for(None)
        assert own is not None and own.startswith(f"00-{run.get_span_context().trace_id:032x}-")
        assert tracing.traceparent_for(junk) == own
        assert tracing.traceparent_for(upper) == own
        assert tracing.traceparent_for(valid) == FORGED
        assert tracing.traceparent_for(twice) == FORGED


def test_spans_go_to_an_otlp_collector_when_the_standard_variables_say_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``OTEL_TRACES_EXPORTER=otlp`` and ``OTEL_EXPORTER_OTLP_ENDPOINT``: a real OTLP/HTTP
    request, with the span in it, reaches the collector's address; no code names it."""
    received: list[bytes] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            assert self.path == "/v1/traces"
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.handle_request, daemon=True).start()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(tracing.exporter()))
    with provider.get_tracer("t").start_as_current_span("PlaceOrder"):
        pass
    provider.shutdown()
    server.server_close()
    (body,) = received
    request = ExportTraceServiceRequest.FromString(body)
    assert [s.name for s in request.resource_spans[0].scope_spans[0].spans] == ["PlaceOrder"]


def test_an_unknown_exporter_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER: 'jaeger'"):
        tracing.exporter()
