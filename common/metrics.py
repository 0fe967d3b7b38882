"""A service's Prometheus metrics, with ``prometheus_client``: one registry per service app (a
test process builds many), served at ``/metrics`` in the text format.

- The counters that the runtime and the garbage collector keep (:meth:`Runtime.counters`,
  :mod:`common.collector`) are read when scraped (:class:`Figures`), under the names they have
  always had (``shop_consumer_batches_total``, ...), labelled with the service.
- The process's own (CPU, memory, open files, start time) and the interpreter's.
- Histograms observed where the work is done: a consumer's batch (time to apply, records), each
  record's hop (from its write to Kafka to the commit of the batch that applied it: one step of
  the saga as this service sees it), a relay round's publish time.
- Dead letters by origin topic and reason class.
- Gauges sampled every few seconds by the runtime: the consumer group's lag per partition (from
  the broker), the outbox's rows and the age of its oldest, the inbox's rows.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

Readings = Mapping[str, tuple[int | float, str]]
"""name -> (value, help)."""

CONTENT_TYPE = CONTENT_TYPE_LATEST

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RECORDS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class Figures(Collector):
    """Counters and gauges kept elsewhere, read when scraped, each ``shop_<name>`` labelled with
    the service."""

    def __init__(
        self,
        service: str,
        counters: Callable[[], Readings],
        gauges: Callable[[], Readings] = dict,
    ) -> None:
        self._service = service
        self._counters = counters
        self._gauges = gauges

    def describe(self) -> Iterator[Metric]:
        """Nothing up front: the figures are read when scraped, not when registered (their owner
        may still be under construction then)."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        for name, (value, text) in self._counters().items():
            counter = CounterMetricFamily(f"shop_{name}", text, labels=["service"])
            counter.add_metric([self._service], value)
            yield counter
        for name, (value, text) in self._gauges().items():
            gauge = GaugeMetricFamily(f"shop_{name}", text, labels=["service"])
            gauge.add_metric([self._service], value)
            yield gauge


class ServiceMetrics:
    """The registry of one service and the instruments its plumbing observes."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        registry = self.registry
        self.batch_seconds = Histogram(
            "shop_consumer_batch_seconds",
            "Time to apply a batch, from its records in hand to its commit.",
            ["service"],
            buckets=SECONDS,
            registry=registry,
        ).labels(service)
        self.batch_records = Histogram(
            "shop_consumer_batch_records",
            "Records per batch.",
            ["service"],
            buckets=RECORDS,
            registry=registry,
        ).labels(service)
        self._hop_seconds = Histogram(
            "shop_consumer_hop_seconds",
            "From a record's write to Kafka to the commit of the batch that applied it: one hop "
            "of the saga as this service sees it, by the record's topic.",
            ["service", "topic"],
            buckets=SECONDS,
            registry=registry,
        )
        self._hops: dict[str, Histogram] = {}
        """The hop histogram's child of each topic, looked up once."""
        self.publish_seconds = Histogram(
            "shop_outbox_publish_seconds",
            "A relay round's publish time: from its first send to Kafka's last acknowledgement.",
            ["service"],
            buckets=SECONDS,
            registry=registry,
        ).labels(service)
        self._lag = Gauge(
            "shop_consumer_lag",
            "Messages the service's consumer group has yet to commit, by topic and partition "
            "(from the broker, sampled every METRICS_SAMPLE_INTERVAL_S).",
            ["service", "topic", "partition"],
            registry=registry,
        )
        self.outbox_rows = Gauge(
            "shop_outbox_rows",
            "Rows in the outbox, not yet published.",
            ["service"],
            registry=registry,
        ).labels(service)
        self.outbox_oldest_seconds = Gauge(
            "shop_outbox_oldest_seconds",
            "Age of the oldest row in the outbox (0 when it is empty).",
            ["service"],
            registry=registry,
        ).labels(service)
        self.inbox_rows = Gauge(
            "shop_inbox_rows",
            "Message ids the inbox keeps (PostgreSQL's estimate, as of its last analyze).",
            ["service"],
            registry=registry,
        ).labels(service)
        self._dead_letters = Counter(
            "shop_dead_letters",
            "Records dead-lettered, by the topic they came from and the class of their reason.",
            ["service", "topic", "reason"],
            registry=registry,
        )

    def hops(self, topic_and_written_ms: Sequence[tuple[str, int]], committed_s: float) -> None:
        """Each record's hop, from its Kafka timestamp (ms) to ``committed_s`` (epoch seconds)."""
        hops = self._hops
        for topic, written_ms in topic_and_written_ms:
            hop = hops.get(topic)
            if hop is None:
                hop = hops[topic] = self._hop_seconds.labels(self.service, topic)
            hop.observe(max(0.0, committed_s - written_ms / 1000))

    def lag(self, behind: Mapping[tuple[str, int], int]) -> None:
        """The group's lag, by (topic, partition)."""
        for (topic, partition), messages in behind.items():
            self._lag.labels(self.service, topic, str(partition)).set(messages)

    def dead_lettered(self, topic: str, reason: str) -> None:
        self._dead_letters.labels(self.service, topic, reason).inc()

    def add(self, collector: Collector) -> None:
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)
