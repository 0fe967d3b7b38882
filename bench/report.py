"""The results as a table (stdout) and as JSON (``<state dir>/bench/<timestamp>.json`` and
``latest.json``), with the ratios that say how far the shop is from its machine's limits."""

import dataclasses
import json
from pathlib import Path
from typing import Any

from bench.results import Results, StepRecord
from bench.stats import Latency, ratio
from bench.tail import HOP_SERVICES, HOPS, PATH


def _knee(results: Results) -> str:
    knee = results.knee_rate
    if knee is None:
        return "none: no step held"
    failed = [record.orders.rate for record in results.steps if not record.passed]
    if not failed:
        return f"{knee:g} orders/s or more: every rate tried held (--max-rate)"
    return f"{knee:g} orders/s ({min(failed):g}/s failed)"


def knee_step(results: Results) -> StepRecord | None:
    """The step the ratios describe: the knee, else (nothing held) the first step."""
    for record in results.steps:
        if record.orders.rate == results.knee_rate:
            return record
    return results.steps[0] if results.steps else None


def compute_ratios(results: Results) -> dict[str, Any]:
    base = results.baselines
    record = knee_step(results)
    ratios: dict[str, Any] = {}
    if record is not None:
        rate = record.orders.rate
        ratios["at_rate"] = rate
        ratios["knee_held"] = results.knee_rate is not None
        tps = base.pgbench.tps if base.pgbench else None
        if record.transactions_per_order is not None:
            ratios["db"] = _rounded(ratio(rate * record.transactions_per_order, tps))
        if record.write_transactions_per_order is not None:
            ratios["db_writes_only"] = _rounded(
                ratio(rate * record.write_transactions_per_order, tps)
            )
        if record.messages_per_order is not None and base.kafka_producer:
            ratios["kafka_produce"] = _rounded(
                ratio(rate * record.messages_per_order, base.kafka_producer.records_per_s)
            )
        raw = base.raw_consumer.records_per_s if base.raw_consumer else None
        ratios["consume"] = {
            group: _rounded(ratio(per_s, raw)) for group, per_s in record.consume_per_s.items()
        }
        ratios["peak_consume"] = {
            group: _rounded(ratio(per_s, raw))
            for group, per_s in results.peak_consume_per_s.items()
        }
    if results.reads and base.trivial_endpoint:
        ratios["reads"] = _rounded(ratio(results.reads.per_s, base.trivial_endpoint.per_s))
    return ratios


def _rounded(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.3g}")


def _n(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f}"


def _lat(latency: Latency | None, which: str) -> str:
    return _ms(getattr(latency, which) if latency else None)


def render(results: Results) -> str:
    base = results.baselines
    o = results.options
    lines = [
        f"shop bench {results.started_at}{'  (quick)' if o.quick else ''}  "
        f"{results.host.get('cpus')} cores, load {results.host.get('load_average_at_start')} "
        f"at start, commit {results.host.get('commit') or '?'}",
        "",
        "baselines (this machine, no shop code)",
    ]
    if base.pgbench:
        lines.append(
            f"  pgbench -N, {base.pgbench.clients} clients, {base.pgbench.seconds}s"
            f"{_n(base.pgbench.tps):>18} TPS"
        )
    if base.kafka_producer:
        lines.append(
            f"  Kafka ProducerPerformance, 500 B{_n(base.kafka_producer.records_per_s):>22}"
            f" records/s  (p99 {base.kafka_producer.p99_ms:g} ms)"
        )
    if base.kafka_consumer:
        lines.append(
            f"  Kafka ConsumerPerformance{_n(base.kafka_consumer.fetch_records_per_s):>29}"
            f" records/s  ({_n(base.kafka_consumer.records_per_s)} with the group join)"
        )
    if base.raw_consumer:
        lines.append(
            f"  aiokafka getmany loop, 500/batch{_n(base.raw_consumer.records_per_s):>22} records/s"
        )
    if base.trivial_endpoint:
        t = base.trivial_endpoint
        lines.append(
            f"  trivial FastAPI endpoint, {t.concurrency} clients{_n(t.per_s):>17} requests/s"
            f"  (client CPU {t.client_cpu_s / t.duration_s:.0%} of a core)"
        )
    for name, error in base.errors.items():
        lines.append(f"  {name}: FAILED {error.splitlines()[0] if error else ''}")
    lines += [
        "",
        f"orders, open loop ({o.step_s:g}s steps; held = p99 <= {o.p99_bound_s:g}s, "
        f"everything ended within {o.drain_s:g}s of the step, <1% refused)",
        f"  {'rate/s':>7} {'sent':>6} {'ok':>6} {'done/s':>7} {'drain s':>7} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'202 p99':>8} "
        f"{'CPU s/o':>8} {'idle s/o':>8} {'cores':>6} {'txn/o':>6} {'wr/o':>5} {'msg/o':>6}"
        "  verdict",
    ]
    for r in results.steps:
        d, f, a = r.orders, r.orders.final_latency, r.orders.accept_latency
        lines.append(
            f"  {d.rate:>7g} {d.planned:>6} {d.accepted:>6} {d.done_per_s:>7g} "
            f"{_n(d.drain_s, 1):>7} {_lat(f, 'p50'):>7} {_lat(f, 'p95'):>7} "
            f"{_lat(f, 'p99'):>7} {_lat(f, 'max'):>7} {_lat(a, 'p99'):>8} "
            f"{_n(r.cpu_per_order_s, 4):>8} {_n(r.idle_cpu_per_order_s, 4):>8} "
            f"{r.cores_busy:>6.2f} "
            f"{_n(r.transactions_per_order, 1):>6} {_n(r.write_transactions_per_order, 1):>5} "
            f"{_n(r.messages_per_order, 1):>6}  "
            + ("held" if r.passed else "FAILED: " + "; ".join(r.reasons))
        )
    lines += _hops(results)
    lines += [
        "",
        f"knee: {_knee(results)}; lost orders: {len(results.lost_orders)} of "
        f"{results.accepted_orders} accepted",
    ]
    record = knee_step(results)
    if record is not None:
        lines.append(
            f"  at {record.orders.rate:g}/s: outcomes {record.orders.outcomes}; "
            f"errors {record.orders.errors or 'none'}"
        )
        busiest = sorted(record.cpu_s.items(), key=lambda item: -item[1])
        lines.append(
            "  CPU s per order by process: "
            + ", ".join(
                f"{name} {seconds / max(record.orders.accepted, 1):.4f}"
                for name, seconds in busiest
            )
            + f"; bench client {record.client_cpu_s / max(record.orders.accepted, 1):.4f}"
        )
        lines.append(
            "  DB transactions per order by database (less the idle rate): "
            + ", ".join(
                f"{db} {count:.1f}"
                for db, count in sorted(record.transactions_per_order_by_db.items())
            )
        )
        lines.append(
            f"  consumer lag when the drain window closed: {record.lag_after_drain}; caught up"
            f" {_n(record.settle_s, 1)}s later"
        )
    if results.reads:
        reads = results.reads
        lines += [
            "",
            f"reads: GET /products through the gateway, {reads.concurrency} clients, "
            f"{reads.visitors} visitors: "
            f"{_n(reads.per_s)} requests/s, p99 {_lat(reads.latency, 'p99')} ms, "
            f"statuses {reads.statuses}, client CPU {reads.client_cpu_s / reads.duration_s:.0%}"
            " of a core",
        ]
    ratios = results.ratios
    lines += ["", "ratios (shop / machine limit)"]
    if record is not None:
        at = f"at {ratios.get('at_rate'):g} orders/s" + (
            "" if ratios.get("knee_held") else " (no step held)"
        )
        if base.pgbench and record.transactions_per_order is not None:
            lines.append(
                f"  database   {at} x {record.transactions_per_order:.1f} txn/order / "
                f"{base.pgbench.tps:,.0f} pgbench TPS = {_g(ratios.get('db'))}"
                f"  (writes only: {record.write_transactions_per_order} / order ="
                f" {_g(ratios.get('db_writes_only'))})"
            )
        if base.kafka_producer and record.messages_per_order is not None:
            lines.append(
                f"  kafka out  {at} x {record.messages_per_order:.1f} messages/order / "
                f"{base.kafka_producer.records_per_s:,.0f} ProducerPerformance = "
                f"{_g(ratios.get('kafka_produce'))}"
            )
        if base.raw_consumer:
            lines.append(
                f"  consume    each group's committed messages/s {at}, and its fastest 5 s"
                f" of any step, / {base.raw_consumer.records_per_s:,.0f} raw aiokafka records/s:"
            )
            for group, per_s in sorted(record.consume_per_s.items()):
                peak = results.peak_consume_per_s.get(group)
                lines.append(
                    f"               {group:<17}{per_s:>8,.1f}/s = "
                    f"{_g(ratios['consume'].get(group)):<9} peak {_n(peak, 1):>7}/s = "
                    f"{_g(ratios['peak_consume'].get(group))}"
                )
    if "reads" in ratios and results.reads and base.trivial_endpoint:
        lines.append(
            f"  reads      {results.reads.per_s:,.0f} gateway GET /products / "
            f"{base.trivial_endpoint.per_s:,.0f} trivial endpoint = {_g(ratios['reads'])}"
        )
    if results.memory:
        lines += ["", "peak memory, MB (sampled each second; VmHWM of the main process)"]
        for name, mb in sorted(results.memory.rss_mb.items()):
            flag = "  OVER 200 MB" if mb > 200 and name.endswith("_svc") else ""
            lines.append(
                f"  {name:<18}{mb:>8,.0f}{results.memory.hwm_mb.get(name, 0):>10,.0f}{flag}"
            )
    for note in results.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def _hops(results: Results) -> list[str]:
    """Where a paid order's time goes: one column per hop, p50 / p95 ms per step."""
    if not any(r.orders.hops for r in results.steps):
        return []
    lines = [
        "",
        "a paid order's path, hop by hop, p50 / p95 ms (a hop: the service fetches the message,"
        " applies it, commits, and its relay produces the next; from the records' timestamps)",
        f"  {'rate/s':>7} " + " ".join(f"{service:>18}" for service in HOP_SERVICES),
        f"  {'':>7} " + " ".join(f"{'-> ' + kind:>18}" for kind in PATH[1:]),
    ]
    for r in results.steps:
        cells = [r.orders.hops.get(hop) for hop in HOPS]
        lines.append(
            f"  {r.orders.rate:>7g} "
            + " ".join(f"{_lat(cell, 'p50') + ' / ' + _lat(cell, 'p95'):>18}" for cell in cells)
        )
    return lines


def write_json(results: Results, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = results.started_at.replace(":", "").replace("-", "").replace("+0000", "Z")
    text = json.dumps(dataclasses.asdict(results), indent=2, default=str) + "\n"
    path = folder / f"{stamp}.json"
    path.write_text(text)
    (folder / "latest.json").write_text(text)
    return path
