"""Logging that carries the saga's correlation id on every line written while handling a message."""

import json
import logging
import os
import sys
from contextvars import ContextVar

from opentelemetry import trace

correlation_id: ContextVar[str] = ContextVar("correlation_id", default="-")


class _CorrelationFilter(logging.Filter):
    """Adds the saga's correlation id, and the current span's trace and span ids (``-`` outside
    a recording span), to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id.get()
        span = trace.get_current_span().get_span_context()
        joined = span.is_valid and span.trace_flags.sampled  # a trace Zipkin will have
        record.trace_id = format(span.trace_id, "032x") if joined else "-"
        record.span_id = format(span.span_id, "016x") if joined else "-"
        return True


class _JsonFormatter(logging.Formatter):
    """One JSON object per line (``LOG_FORMAT=json``)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", "-"),
            "trace_id": getattr(record, "trace_id", "-"),
            "span_id": getattr(record, "span_id", "-"),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO") -> None:
    """One line per record: time, level, service, correlation id, trace and span ids, logger,
    message; with ``LOG_FORMAT=json``, one JSON object per line with the same fields."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_CorrelationFilter())
    if os.environ.get("LOG_FORMAT", "").lower() == "json":
        handler.setFormatter(_JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter(
                f"%(asctime)s %(levelname)s {service} [%(correlation_id)s"
                " trace=%(trace_id)s span=%(span_id)s] %(name)s: %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
