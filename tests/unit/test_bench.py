"""The bench's pure parts: percentiles, whether a step held, the knee, the order mix, the
parsing of what pgbench and Kafka's perf tools print, and an order's path hop by hop."""

import os
import random
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web
from aiokafka import ConsumerRecord

from bench import probes
from bench.baselines import parse_pgbench_output
from bench.http_load import closed_loop, loopback_addresses, shares
from bench.load import DECLINE, OK, SCARCE, Mix, plan_orders
from bench.perftools import parse_consumer_output, parse_producer_output
from bench.shop import Catalog
from bench.stats import (
    Latency,
    StepFigures,
    judge_step,
    next_rate,
    percentile,
    select_knee,
)
from bench.tail import PATH, OrderTail, hop_latencies
from bench.variants import COMPARISONS, VARIABLES, Figures, render
from common.kafka_access import KafkaAccess
from tests.conftest import consumer_record, http_server


def test_percentile_is_nearest_rank_when_values_are_unsorted() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 1..100, reversed
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0], 50) == 1.0


def test_percentile_refuses_no_values_and_out_of_range() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_latency_summary_when_there_are_samples_and_when_there_are_none() -> None:
    summary = Latency.of([0.3, 0.1, 0.2, 0.4])
    assert summary is not None
    assert (summary.count, summary.p50, summary.p99, summary.max) == (4, 0.2, 0.4, 0.4)
    assert summary.mean == pytest.approx(0.25)
    assert Latency.of([]) is None


def _step(**changes: object) -> StepFigures:
    fields: dict[str, object] = {
        "rate": 50.0,
        "planned": 500,
        "accepted": 500,
        "errors": 0,
        "completed": 500,
        "final_latency": Latency.of([0.1] * 99 + [0.5]),
        "accept_latency": Latency.of([0.01] * 100),
        "send_lag_max_s": 0.01,
    }
    fields.update(changes)
    return StepFigures(**fields)  # type: ignore[arg-type]


def test_a_step_holds_when_everything_ends_in_time_within_the_bound() -> None:
    verdict = judge_step(_step(), p99_bound_s=1.0)
    assert verdict.passed and verdict.reasons == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"completed": 480}, "backlog"),
        ({"final_latency": Latency.of([2.0] * 100)}, "p99"),
        ({"accept_latency": Latency.of([1.5] * 100)}, "HTTP accept"),
        ({"errors": 50, "accepted": 450, "completed": 450}, "not accepted"),
        ({"send_lag_max_s": 2.0}, "fell"),
        ({"final_latency": None, "completed": 0}, "no order completed"),
    ],
)
def test_a_step_fails_when_a_limit_is_crossed(changes: dict[str, object], reason: str) -> None:
    verdict = judge_step(_step(**changes), p99_bound_s=1.0)
    assert not verdict.passed
    assert any(reason in text for text in verdict.reasons), verdict.reasons


def test_knee_is_the_highest_rate_that_held_below_every_failure() -> None:
    assert select_knee([(25, True), (50, True), (100, True), (150, False)]) == 100
    assert select_knee([(25, True), (50, False), (100, True)]) == 25  # a lucky pass later
    assert select_knee([(25, False), (50, True)]) is None


def test_the_knee_search_halves_climbs_and_bisects_to_its_resolution() -> None:
    def after(*steps: tuple[float, bool], ceiling: float = 1000) -> float | None:
        return next_rate(steps, ceiling=ceiling, floor=2, resolution=50)

    assert after((25, False)) == 12.5  # nothing held: halve
    assert after((25, False), (12.5, False), (6.25, False), (3.125, False)) is None  # the floor
    assert after((25, False), (12.5, True)) is None  # within the resolution of the failure
    assert after((25, True), (300, True)) == 400  # everything held: a third more
    assert after((600, True)) == 800
    assert after((900, True)) == 1000 and after((1000, True)) is None  # up to the ceiling
    assert after((300, True), (400, False)) == 350  # between the knee and the failure
    assert after((300, True), (400, False), (350, True)) is None
    assert after((300, True), (400, False), (350, False)) is None
    assert after((300, True), (400, True), (550, False)) == 500
    assert after((100, True), (150, False), (200, True)) is None  # a lucky pass counts for nothing
    assert after() is None
    assert select_knee([(25, True), (50, True)]) == 50
    assert select_knee([(25, False), (12.5, False), (6.25, True)]) == 6.25  # halving down
    assert select_knee([]) is None


def test_order_mix_has_the_planned_shares_and_only_catalog_products() -> None:
    catalog = Catalog("c", hot=("h1", "h2", "h3"), regular=("r1", "r2", "r3", "r4"), scarce="s")
    plans = plan_orders(20_000, random.Random(7), customers=50, catalog=catalog, mix=Mix())
    kinds = Counter(plan.kind for plan in plans)
    assert kinds[SCARCE] / len(plans) == pytest.approx(0.05, abs=0.01)
    assert kinds[DECLINE] / len(plans) == pytest.approx(0.10, abs=0.01)
    assert kinds[OK] / len(plans) == pytest.approx(0.85, abs=0.01)
    assert all(plan.items == (("s", 1),) for plan in plans if plan.kind == SCARCE)
    items = [product for plan in plans if plan.kind != SCARCE for product, _ in plan.items]
    assert set(items) <= set(catalog.stocked)
    hot = sum(1 for product in items if product in catalog.hot) / len(items)
    assert 0.4 < hot < 0.6  # three hot products take about half the items
    assert {plan.customer for plan in plans} == set(range(50))
    assert all(len({p for p, _ in plan.items}) == len(plan.items) for plan in plans)


PRODUCER_OUTPUT = """\
24976 records sent, 4995.2 records/sec (2.38 MB/sec), 1587.3 ms avg latency, 2810.0 ms max latency.
200000 records sent, 34554.3 records/sec (16.48 MB/sec), 357.19 ms avg latency, 464.00 ms max \
latency, 382 ms 50th, 449 ms 95th, 460 ms 99th, 463 ms 99.9th.
"""

CONSUMER_OUTPUT = """\
[2026-11-25 02:55:42,988] WARN something the tool logged (org.apache.kafka.clients.Metadata)
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-11-25 02:55:54:306, 2026-11-25 02:55:54:863, 9.6745, 17.3690, 20289, 36425.4937, 371, 186, \
52.0137, 109080.6452
"""


def test_producer_performance_summary_is_its_last_line_with_percentiles() -> None:
    figures = parse_producer_output(PRODUCER_OUTPUT)
    assert figures.records == 200_000
    assert figures.records_per_s == 34554.3
    assert figures.mb_per_s == 16.48
    assert (figures.p50_ms, figures.p99_ms) == (382, 460)


def test_consumer_performance_row_is_read_by_its_header() -> None:
    figures = parse_consumer_output(CONSUMER_OUTPUT)
    assert figures.records == 20289
    assert figures.records_per_s == pytest.approx(36425.4937)
    assert figures.fetch_records_per_s == pytest.approx(109080.6452)
    assert figures.rebalance_ms == 371


def test_perf_tool_output_without_figures_is_an_error() -> None:
    with pytest.raises(ValueError):
        parse_producer_output("24976 records sent, 4995.2 records/sec (2.38 MB/sec), 1.0 ms avg")
    with pytest.raises(ValueError):
        parse_consumer_output("start.time, end.time\n")


def test_pgbench_tps_excludes_the_connection_time() -> None:
    text = (
        "number of transactions actually processed: 6858\n"
        "number of failed transactions: 0 (0.000%)\n"
        "latency average = 5.791 ms\n"
        "initial connection time = 50.715 ms\n"
        "tps = 1381.388241 (without initial connection time)\n"
    )
    figures = parse_pgbench_output(text, clients=8, seconds=5)
    assert figures.tps == pytest.approx(1381.388241)
    assert figures.latency_avg_ms == pytest.approx(5.791)
    assert figures.failed == 0


def test_hop_latencies_split_a_paid_orders_path_by_service() -> None:
    def path(start: float, *gaps: float) -> dict[str, float]:
        times = [start]
        for gap in gaps:
            times.append(times[-1] + gap)
        return dict(zip(PATH, times, strict=True))

    stamps = {
        "a": path(100.0, 0.05, 0.02, 0.03, 0.04),
        "b": path(200.0, 0.07, 0.04, 0.01, 0.06),
        "c": {"PlaceOrder": 300.0, "OrderPlaced": 300.5},  # cancelled: not the whole path
    }
    hops = hop_latencies(stamps, ["a", "b", "c", "unknown"])

    assert list(hops) == [
        "order_svc: PlaceOrder -> OrderPlaced",
        "product_svc: OrderPlaced -> StockReserved",
        "payment_svc: StockReserved -> PaymentSucceeded",
        "order_svc: PaymentSucceeded -> OrderPaid",
    ]
    assert {hop.count for hop in hops.values()} == {2}
    assert hops["product_svc: OrderPlaced -> StockReserved"].max == pytest.approx(0.04)
    assert hops["order_svc: PaymentSucceeded -> OrderPaid"].p50 == pytest.approx(0.04)


async def test_the_tail_stamps_the_first_record_of_each_path_message() -> None:
    tail = OrderTail(KafkaAccess("127.0.0.1:1"))  # never started: only its bookkeeping is used

    def produced(kind: str, at_ms: int) -> ConsumerRecord[bytes, bytes]:
        record = consumer_record(
            "orders.events", b"{}", key=b"o1", headers=(("type", kind.encode()),)
        )
        record.timestamp = at_ms
        return record

    for kind, at_ms in (("OrderPlaced", 1_000), ("OrderPlaced", 2_000), ("OrderPaid", 3_000)):
        tail._stamp(produced(kind, at_ms))
    tail._stamp(produced("NotificationSent", 4_000))

    assert tail.path_stamps == {"o1": {"OrderPlaced": 1.0, "OrderPaid": 3.0}}


def test_memory_of_processes_sharing_pages_counts_the_shared_pages_once() -> None:
    """For one process the estimate is its resident set; for the same process twice, only its
    own anonymous pages count twice."""
    me = os.getpid()
    rss, anon = probes._status_kb(me, "VmRSS", "RssAnon")
    assert rss > 0 and 0 < anon < rss
    # VmRSS and its parts are read a moment apart: allow a few pages of difference
    assert abs(probes._shared_once_kb([me]) - rss) < 2048
    assert abs(probes._shared_once_kb([me, me]) - (rss + anon)) < 4096
    assert probes._status_kb(me, "NoSuchField") == [0]


def test_each_client_takes_its_own_visitors_in_turn_or_shares_one_when_they_are_fewer() -> None:
    assert shares(list("abcdefg"), 3) == [["a", "d", "g"], ["b", "e"], ["c", "f"]]
    assert shares(list("ab"), 4) == [["a"], ["b"], ["a"], ["b"]]
    assert loopback_addresses(252)[:2] == ["127.0.0.2", "127.0.0.3"]
    assert loopback_addresses(252)[-2:] == ["127.0.1.2", "127.0.1.3"]
    assert len(set(loopback_addresses(600))) == 600
    with pytest.raises(ValueError, match="visitors"):
        loopback_addresses(0)


async def test_reads_come_from_as_many_addresses_as_visitors_each_under_a_per_address_limit() -> (
    None
):
    """A server that allows each address 5 requests: from one address nearly all are refused,
    from 64 visitors none of the first 5 x 64."""
    seen: Counter[str] = Counter()

    async def answer(request: web.Request) -> web.Response:
        seen[request.remote or ""] += 1
        return web.Response(status=200 if seen[request.remote or ""] <= 5 else 429)

    async with http_server(answer) as url:
        alone = await closed_loop(url, "/page", concurrency=4, duration_s=0.3, warmup_s=0)
        visitors = set(seen)
        seen.clear()
        many = await closed_loop(
            url, "/page", concurrency=4, duration_s=1.0, warmup_s=0, visitors=64
        )
    assert visitors == {"127.0.0.2"}
    assert alone.ok == 5 and alone.statuses["429"] > 5
    assert set(seen) == set(loopback_addresses(64))
    assert many.ok == 5 * 64 and many.visitors == 64


def test_variants_are_compared_by_their_medians_with_ratios_to_the_first() -> None:
    rounds = [
        [Figures("1 broker", 200, 0.100, 0.020), Figures("3+SCRAM+2x", 100, 0.300, 0.030)],
        [Figures("1 broker", 150, 0.200, 0.024), Figures("3+SCRAM+2x", 50, 0.500, 0.034)],
    ]
    table = render(rounds, "cluster").splitlines()
    assert table[0].startswith("cluster: 2 round(s) of each")
    first, second = table[2].split(), table[3].split()
    assert first[:3] == ["1", "broker", "175"] and "(150-200)" in table[2]
    assert second[0] == "3+SCRAM+2x" and second[1] == "75" and "0.43" in second
    assert "2.67" in second  # the p99, 0.400 s against 0.150 s
    assert set(VARIABLES) >= {"SHOP_TRACING", "SHOP_KAFKA_BROKERS", "SHOP_REPLICAS"}
    assert [name for name, _ in COMPARISONS["replicas"]] == [
        "payment x1",
        "payment x2",
        "payment x3",
    ]


def test_a_comparison_stops_its_variants_stack_even_when_a_run_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An interrupted comparison leaves no variant's stack running (its folder would be
    deleted by make clean with the processes still up)."""
    from bench import variants

    monkeypatch.setenv("SHOP_STATE_DIR", str(tmp_path))
    downs: list[Path] = []
    monkeypatch.setattr(variants.lifecycle, "down", lambda config: downs.append(config.state_dir))

    def interrupted(opts: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(variants.run, "run", interrupted)

    with pytest.raises(KeyboardInterrupt):
        variants.main(["cluster", "--quick", "--no-baselines"])

    assert downs[-1] == tmp_path / "variants" / "cluster" / "1-broker"


def test_the_warm_up_is_five_seconds_at_five_orders_unless_told() -> None:
    from bench import options

    default = options.parse([])
    longer = options.parse(["--warmup-seconds", "60", "--warmup-rate", "10"])

    assert (default.warmup_s, default.warmup_rate) == (5.0, 5.0)
    assert (longer.warmup_s, longer.warmup_rate) == (60.0, 10.0)
