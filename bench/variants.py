"""``python -m bench.variants COMPARISON [--rounds N] [bench options]``: the same bench
(:mod:`bench.run`) for each variant of the stack's settings, back to back, the stack restarted
for each and the variants taken in turn ``N`` times. Prints, side by side, each variant's median
(and range) of the knee, the p99 from the client's send to the order's end and the CPU seconds
per order at a rate all of them hold, and each as a ratio of the first variant. CPU counts the
shop's processes (services, Kafka, PostgreSQL), not a Zipkin that receives spans. Each run's
JSON goes to ``<state dir>/bench/<comparison>/``; each variant's stack runs in
``<state dir>/variants/<comparison>/<variant>/``.

- ``tracing`` (``make bench-tracing``): tracing off, on with every trace sampled, on with one in
  ten (OpenTelemetry's own sampler variables).
- ``cluster`` (``make bench-cluster``): one broker, against three brokers with SASL/SCRAM, and
  the same with two processes of each service.
- ``cluster-steps``: where the cluster's cost comes from, one part at a time: one broker,
  three brokers, three with SCRAM, one broker with two processes of each service.
- ``cluster-wait``: one broker and three, each with the services' fetches answered at the
  first record (the default) and held up to 20 ms to gather records (``CONSUMER_FETCH_WAIT_MS``).
- ``replicas`` (``make bench-replicas``): 1, 2 and 3 processes of the busiest service
  (payment_svc, the group with the most messages per order), on one broker.
"""

import argparse
import contextlib
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import options, report, run
from bench.results import Results, StepRecord
from stack import lifecycle
from stack.config import StackConfig
from stack.progress import step

Variants = tuple[tuple[str, dict[str, str]], ...]
COMPARISONS: dict[str, Variants] = {
    "tracing": (
        ("off", {}),
        ("on, 100%", {"SHOP_TRACING": "1"}),
        (
            "on, 10%",
            {
                "SHOP_TRACING": "1",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
            },
        ),
    ),
    "cluster": (
        ("1 broker", {}),
        ("3+SCRAM", {"SHOP_KAFKA_BROKERS": "3", "SHOP_KAFKA_SECURITY": "scram"}),
        (
            "3+SCRAM+2x",
            {"SHOP_KAFKA_BROKERS": "3", "SHOP_KAFKA_SECURITY": "scram", "SHOP_REPLICAS": "2"},
        ),
    ),
    "cluster-steps": (
        ("1 broker", {}),
        ("3 brokers", {"SHOP_KAFKA_BROKERS": "3"}),
        ("3+SCRAM", {"SHOP_KAFKA_BROKERS": "3", "SHOP_KAFKA_SECURITY": "scram"}),
        ("1+2x", {"SHOP_REPLICAS": "2"}),
    ),
    "cluster-wait": (
        ("1 broker", {}),
        ("1, wait 20", {"CONSUMER_FETCH_WAIT_MS": "20"}),
        ("3 brokers", {"SHOP_KAFKA_BROKERS": "3"}),
        ("3, wait 20", {"SHOP_KAFKA_BROKERS": "3", "CONSUMER_FETCH_WAIT_MS": "20"}),
    ),
    "replicas": tuple((f"payment x{n}", {"SHOP_REPLICAS": f"payment_svc={n}"}) for n in (1, 2, 3)),
}
VARIABLES = {name for variants in COMPARISONS.values() for _, env in variants for name in env}
"""Every setting a variant sets: cleared before each, so that one's does not leak into the
next."""
COMPARED_AT = 50.0
"""Orders/s at which the p99 and the CPU per order are compared: a rate every variant held on
this 2-core machine (tracing at 100% did not hold 100/s)."""


@dataclass
class Figures:
    variant: str
    knee: float | None
    p99_s: float | None
    cpu_per_order_s: float | None


def figures(variant: str, results: Results) -> Figures:
    at: StepRecord | None = next(
        (s for s in results.steps if s.orders.rate == COMPARED_AT and s.passed), None
    )
    latency = at.orders.final_latency if at is not None else None
    return Figures(
        variant,
        results.knee_rate,
        latency.p99 if latency is not None else None,
        at.cpu_per_order_s if at is not None else None,
    )


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _spread(values: list[float | None], digits: int) -> str:
    """The median, and the range when there are several rounds."""
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    middle = f"{statistics.median(known):.{digits}f}"
    if len(known) == 1:
        return middle
    return f"{middle} ({min(known):.{digits}f}-{max(known):.{digits}f})"


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}" if value is not None and base else "-"


def render(rounds: list[list[Figures]], comparison: str = "tracing") -> str:
    """Per variant: the median of the rounds (and their range), and its ratio to the first."""
    names = [row.variant for row in rounds[0]]
    columns = {
        name: [row for one in rounds for row in one if row.variant == name] for name in names
    }
    base = columns[names[0]]
    lines = [
        f"{comparison}: {len(rounds)} round(s) of each, back to back; median (range);"
        f" p99 and CPU per order at {COMPARED_AT:.0f}/s",
        f"{'variant':<12}{'knee/s':>16}{'ratio':>7}{'p99 s':>22}{'ratio':>7}"
        f"{'CPU s/order':>24}{'ratio':>7}",
    ]
    for name in names:
        rows = columns[name]
        knees = [r.knee for r in rows]
        p99s = [r.p99_s for r in rows]
        cpus = [r.cpu_per_order_s for r in rows]
        lines.append(
            f"{name:<12}{_spread(knees, 0):>16}"
            f"{_ratio(_median(knees), _median([r.knee for r in base])):>7}"
            f"{_spread(p99s, 3):>22}"
            f"{_ratio(_median(p99s), _median([r.p99_s for r in base])):>7}"
            f"{_spread(cpus, 4):>24}"
            f"{_ratio(_median(cpus), _median([r.cpu_per_order_s for r in base])):>7}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("comparison", choices=sorted(COMPARISONS))
    own.add_argument("--rounds", type=int, default=1, help="each variant this many times")
    mine, rest = own.parse_known_args(argv)
    opts = options.parse(rest)
    base = StackConfig().state_dir
    rounds: list[list[Figures]] = []
    try:
        _run(mine, opts, base, rounds)
    finally:  # also when a run fails or is interrupted: no variant's stack is left running
        with contextlib.redirect_stdout(sys.stderr):
            lifecycle.down(StackConfig())
    sys.stdout.write(render(rounds, mine.comparison))
    return 0 if all(row.knee is not None for rows in rounds for row in rows) else 1


def _run(
    mine: argparse.Namespace, opts: options.Options, base: Path, rounds: list[list[Figures]]
) -> None:
    """Each round, each variant: the stack restarted with its settings, the bench run."""
    config = StackConfig()
    for number in range(1, mine.rounds + 1):
        rows: list[Figures] = []
        for variant, settings in COMPARISONS[mine.comparison]:
            with contextlib.redirect_stdout(sys.stderr):
                lifecycle.down(config)  # as the last variant ran, whatever it was
            for name in VARIABLES:
                os.environ.pop(name, None)
            os.environ.update(settings)
            # each variant in a folder of its own: a broker's storage is formatted for one
            # topology and one security, and the results stay apart
            slug = "".join(c if c.isalnum() else "-" for c in variant)
            os.environ["SHOP_STATE_DIR"] = str(base / "variants" / mine.comparison / slug)
            config = StackConfig()
            step("bench", f"round {number}, {variant}: the stack restarted with it...")
            results = run.run(opts)
            results.ratios = report.compute_ratios(results)
            results.notes = [f"{mine.comparison} {variant}, round {number}"]
            path = report.write_json(results, base / "bench" / mine.comparison)
            step("bench", f"{variant}: results in {path}")
            rows.append(figures(variant, results))
        rounds.append(rows)


if __name__ == "__main__":
    sys.exit(main())
