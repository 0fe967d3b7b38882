"""Log lines carry the saga's correlation id and, inside a span, its trace and span ids."""

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from common.logs import configure_logging, correlation_id


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_a_json_line_inside_a_span_names_its_trace_and_span(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    configure_logging("test_svc")
    tracer = TracerProvider().get_tracer("test")
    token = correlation_id.set("c0ffee")
    try:
        with tracer.start_as_current_span("work") as span:
            logging.getLogger("shop.test").warning("inside %s", "a span")
        logging.getLogger("shop.test").warning("outside")
    finally:
        correlation_id.reset(token)
    inside, outside = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    context = span.get_span_context()
    assert inside["message"] == "inside a span" and inside["service"] == "test_svc"
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert inside["correlation_id"] == "c0ffee"
    assert (outside["trace_id"], outside["span_id"]) == ("-", "-")


def test_a_text_line_carries_the_same_fields(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    configure_logging("test_svc")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("shop.test").warning("hello")
    line = capsys.readouterr().out.strip()
    assert f"trace={span.get_span_context().trace_id:032x}" in line
    assert line.endswith("shop.test: hello") and " test_svc [" in line
