"""``python -m bench [--quick]``: see :mod:`bench`."""

import sys

from bench import options, report, run
from stack.config import StackConfig
from stack.progress import step

NOTES = (
    "latency: from the scheduled send to the timestamp of the order's OrderPaid/OrderCancelled"
    " on orders.events (tailed without a group; no polling); '202 p99' is from the scheduled"
    " send to the 202, which comes once order_svc has recorded the order",
    "txn/o: commits + rollbacks of the six service databases (pg_stat_database) per accepted "
    "order, minus the idle rate; wr/o: transaction ids taken, i.e. transactions that wrote",
    "consume: each service's consumer group's committed offsets over the step, per second of "
    "it; the gateway's own tail of orders.events has no group and is not counted",
    "CPU s/o: CPU seconds of every process of the stack (services, Kafka, PostgreSQL backends)"
    " over the step and its drain, per order; idle s/o: what the same processes burn idle over"
    " as long a window; cores: the stack's CPU seconds per second of the window",
    "reads: anonymous, each client taking its visitors' loopback addresses in turn, so that the"
    " gateway's rate limit (per address) bounds none; a 429 among the statuses says it did",
)


def main(argv: list[str] | None = None) -> int:
    opts = options.parse(argv)
    results = run.run(opts)
    results.ratios = report.compute_ratios(results)
    results.notes = list(NOTES)
    path = report.write_json(results, StackConfig().state_dir / "bench")
    sys.stdout.write(report.render(results))
    sys.stdout.flush()
    step("bench", f"results in {path} (and latest.json beside it)")
    return 0 if results.knee_rate is not None and not results.lost_orders else 1


if __name__ == "__main__":
    sys.exit(main())
