"""What one bench run found: the baselines, each order step, the reads, and the ratios."""

from dataclasses import dataclass, field
from typing import Any

from bench import probes
from bench.baselines import Baselines
from bench.http_load import ReadFigures
from bench.load import OrderStep
from bench.options import Options


@dataclass
class StepRecord:
    orders: OrderStep
    passed: bool
    reasons: list[str]
    wall_s: float
    """From the counters before the step to those after everything it caused had settled."""
    settle_s: float | None
    """From the end of the schedule until every consumer group had caught up (None: never)."""
    lag_after_drain: dict[str, int]
    """Messages each service had not yet consumed when the drain window closed."""
    cpu_s: dict[str, float]
    cpu_total_s: float
    cpu_per_order_s: float | None
    idle_cpu_per_order_s: float | None
    """The part of ``cpu_per_order_s`` the stack spends anyway, idle, over as long a window
    (relay polls, consumers' empty fetches, the JVM): it dominates at low rates."""
    cores_busy: float
    """The shop's CPU seconds over the window's seconds: how many cores it kept busy."""
    client_cpu_s: float
    transactions: dict[str, int]
    """Commits + rollbacks per service database over the window."""
    background_transactions: float
    """What the services do idle (relay polls, health checks) over as long a window."""
    transactions_per_order_by_db: dict[str, float]
    """Over the window, less the idle ones, per accepted order."""
    transactions_per_order: float | None
    write_transactions_per_order: float | None
    """Transactions that wrote (took a transaction id), per order; exact, server-wide."""
    produced: dict[str, int]
    messages_per_order: float | None
    consumed: dict[str, int]
    consumed_per_order: dict[str, float]
    consume_per_s: dict[str, float]
    """Messages each service's group committed over the step, per second of the schedule."""


@dataclass
class Results:
    started_at: str
    host: dict[str, Any]
    options: Options
    baselines: Baselines
    background_transactions_per_s: dict[str, float] = field(default_factory=dict)
    """Each service database's transactions per second while the services were idle."""
    idle_cpu_per_s: dict[str, float] = field(default_factory=dict)
    """CPU seconds per second of each process of the stack, idle."""
    peak_consume_per_s: dict[str, float] = field(default_factory=dict)
    """Each service's fastest consumption over any 5 s of the order steps (its group's
    committed offsets): near its ceiling once a step overloads it."""
    steps: list[StepRecord] = field(default_factory=list)
    knee_rate: float | None = None
    reads: ReadFigures | None = None
    lost_orders: list[dict[str, Any]] = field(default_factory=list)
    accepted_orders: int = 0
    memory: probes.MemoryPeaks | None = None
    ratios: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    finished_at: str = ""
