"""Kafka's own ProducerPerformance and ConsumerPerformance, from the broker's jars, and the
parsing of what they print."""

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

LOG4J = Path(__file__).with_name("log4j2-tools.xml")
TOOLS = "org.apache.kafka.tools"

_PRODUCER_SUMMARY = re.compile(
    r"^(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


@dataclass(frozen=True)
class ProducerFigures:
    records: int
    records_per_s: float
    mb_per_s: float
    avg_latency_ms: float
    max_latency_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True)
class ConsumerFigures:
    records: int
    mb: float
    records_per_s: float
    """Over the whole run, including joining the group."""
    fetch_records_per_s: float
    """Over the fetching only (what the tool calls fetch.nMsg.sec)."""
    rebalance_ms: float
    fetch_ms: float


def parse_producer_output(text: str) -> ProducerFigures:
    """The final summary line of ProducerPerformance (the periodic ones carry no percentiles)."""
    found = None
    for line in text.splitlines():
        match = _PRODUCER_SUMMARY.match(line.strip())
        if match:
            found = match
    if found is None:
        raise ValueError(f"no ProducerPerformance summary in its output:\n{text[-2000:]}")
    return ProducerFigures(
        records=int(found["records"]),
        records_per_s=float(found["rate"]),
        mb_per_s=float(found["mb"]),
        avg_latency_ms=float(found["avg"]),
        max_latency_ms=float(found["max"]),
        p50_ms=float(found["p50"]),
        p95_ms=float(found["p95"]),
        p99_ms=float(found["p99"]),
    )


def parse_consumer_output(text: str) -> ConsumerFigures:
    """ConsumerPerformance prints a CSV header (``start.time, end.time, ...``) and one row."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if not line.startswith("start.time,") or index + 1 >= len(lines):
            continue
        names = [name.strip() for name in line.split(",")]
        values = [value.strip() for value in lines[index + 1].split(",")]
        if len(values) != len(names):
            continue
        row = dict(zip(names, values, strict=True))
        try:
            return ConsumerFigures(
                records=int(row["data.consumed.in.nMsg"]),
                mb=float(row["data.consumed.in.MB"]),
                records_per_s=float(row["nMsg.sec"]),
                fetch_records_per_s=float(row["fetch.nMsg.sec"]),
                rebalance_ms=float(row["rebalance.time.ms"]),
                fetch_ms=float(row["fetch.time.ms"]),
            )
        except (KeyError, ValueError):
            continue
    raise ValueError(f"no ConsumerPerformance figures in its output:\n{text[-2000:]}")


def _java(jars_dir: Path, tool: str, *args: str) -> list[str]:
    return [
        "java",
        "-Xmx512m",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J}",
        "-cp",
        f"{jars_dir}/*",
        f"{TOOLS}.{tool}",
        *args,
    ]


def _run(argv: list[str], timeout_s: float) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if result.returncode != 0:
        output = result.stdout[-1500:] + result.stderr[-1500:]
        raise RuntimeError(f"{argv[-1]} exited {result.returncode}:\n{output}")
    return result.stdout


def producer_performance(
    jars_dir: Path, bootstrap: str, topic: str, records: int, record_size: int
) -> ProducerFigures:
    argv = _java(
        jars_dir,
        "ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(record_size),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={bootstrap}",
    )
    return parse_producer_output(_run(argv, timeout_s=300))


def consumer_performance(
    jars_dir: Path, bootstrap: str, topic: str, records: int
) -> ConsumerFigures:
    argv = _java(
        jars_dir,
        "ConsumerPerformance",
        "--topic",
        topic,
        "--messages",
        str(records),
        "--bootstrap-server",
        bootstrap,
        "--timeout",
        "30000",
    )
    return parse_consumer_output(_run(argv, timeout_s=300))
