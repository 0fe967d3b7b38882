"""The bench's knobs, from the command line; ``--quick`` shortens everything for a smoke run."""

import argparse
from dataclasses import dataclass

DEFAULT_RATES = (25.0, 50.0, 100.0, 150.0, 200.0, 300.0)


@dataclass(frozen=True)
class Options:
    quick: bool
    rates: tuple[float, ...]
    step_s: float
    p99_bound_s: float
    drain_s: float
    settle_s: float
    warmup_s: float
    warmup_rate: float
    customers: int
    keep_going: bool
    max_rate: float
    knee_resolution: float
    baselines: bool
    pgbench_s: int
    pgbench_clients: int
    perf_records: int
    perf_record_size: int
    read_s: float
    read_concurrency: int
    read_visitors: int
    seed: int


def _rates(text: str) -> tuple[float, ...]:
    rates = tuple(float(part) for part in text.split(",") if part.strip())
    if not rates or any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError("give positive rates, e.g. 25,50,100")
    return tuple(sorted(rates))


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Baselines of this machine, then the shop under an open-loop order load "
        "stepped up to its knee, then reads; a table on stdout, JSON under <state dir>/bench/.",
    )
    parser.add_argument("--quick", action="store_true", help="short steps and baselines")
    parser.add_argument(
        "--rates",
        type=_rates,
        help=f"orders/s per step (default {','.join(map(str, DEFAULT_RATES))})",
    )
    parser.add_argument("--step-seconds", type=float, help="each step (default 60; quick 10)")
    parser.add_argument("--p99-bound", type=float, default=1.0, help="seconds (default 1)")
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=5.0,
        help="after a step, every accepted order must end within this (default 5)",
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=120.0,
        help="then wait this long at most for the rest, and for every consumer to catch up",
    )
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        help="orders at --warmup-rate before the first step (default 5; quick 3): a JVM (Kafka)"
        " compiles its hot code in its first minute of work, so a cluster of them wants longer",
    )
    parser.add_argument("--warmup-rate", type=float, default=5.0, help="orders/s (default 5)")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument(
        "--keep-going", action="store_true", help="run every rate, even after one fails"
    )
    parser.add_argument(
        "--max-rate",
        type=float,
        help="when every rate held, climb past the last up to this (default 1000; quick: the"
        " last rate, no climb)",
    )
    parser.add_argument(
        "--knee-resolution",
        type=float,
        default=50.0,
        help="orders/s: the search stops when the knee and the lowest failure are this close",
    )
    parser.add_argument("--no-baselines", action="store_true", help="skip pgbench, Kafka, etc.")
    parser.add_argument("--pgbench-seconds", type=int, help="default 20; quick 5")
    parser.add_argument("--perf-records", type=int, help="default 200000; quick 50000")
    parser.add_argument("--read-seconds", type=float, help="default 15; quick 5")
    parser.add_argument("--read-concurrency", type=int, default=32)
    parser.add_argument(
        "--read-visitors",
        type=int,
        default=256,
        help="loopback addresses the reads come from, each limited by the gateway on its own",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    quick: bool = args.quick
    rates: tuple[float, ...] = args.rates or DEFAULT_RATES
    return Options(
        quick=quick,
        rates=rates,
        step_s=args.step_seconds or (10.0 if quick else 60.0),
        p99_bound_s=args.p99_bound,
        drain_s=args.drain_seconds,
        settle_s=args.settle_seconds,
        warmup_s=args.warmup_seconds or (3.0 if quick else 5.0),
        warmup_rate=args.warmup_rate,
        customers=args.customers,
        keep_going=args.keep_going,
        max_rate=args.max_rate or (max(rates) if quick else 1000.0),
        knee_resolution=args.knee_resolution,
        baselines=not args.no_baselines,
        pgbench_s=args.pgbench_seconds or (5 if quick else 20),
        pgbench_clients=8,
        perf_records=args.perf_records or (50_000 if quick else 200_000),
        perf_record_size=500,
        read_s=args.read_seconds or (5.0 if quick else 15.0),
        read_concurrency=args.read_concurrency,
        read_visitors=args.read_visitors,
        seed=args.seed,
    )
