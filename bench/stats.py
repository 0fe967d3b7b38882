"""Pure figures: percentiles, latency summaries, whether a load step held, the knee, and the
next rate to try in the search for it."""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of ``values``: a value that occurred,
    never an interpolation below it, so a p99 of 100 samples is the largest but one."""
    if not values:
        raise ValueError("no values")
    if not 0 < p <= 100:
        raise ValueError(f"percentile out of range: {p}")
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True)
class Latency:
    """Seconds; ``count`` samples."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Iterable[float]) -> "Latency | None":
        samples = sorted(values)
        if not samples:
            return None
        return cls(
            count=len(samples),
            p50=percentile(samples, 50),
            p95=percentile(samples, 95),
            p99=percentile(samples, 99),
            max=samples[-1],
            mean=sum(samples) / len(samples),
        )


@dataclass
class StepVerdict:
    """Whether one step of the open-loop load held, and every reason it did not."""

    passed: bool
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StepFigures:
    """What :func:`judge_step` needs from one step; the rest of a step's record is reporting."""

    rate: float
    planned: int
    accepted: int
    errors: int
    completed: int
    """Accepted orders whose final event arrived by the end of the drain window."""
    final_latency: Latency | None
    """From the scheduled send to the order's final event."""
    accept_latency: Latency | None
    """From the scheduled send to the HTTP 202 (open loop: queueing in the client counts)."""
    send_lag_max_s: float
    """How late the generator fired its latest request: a client that cannot keep up."""


def judge_step(
    step: StepFigures,
    *,
    p99_bound_s: float,
    max_error_fraction: float = 0.01,
    max_send_lag_s: float = 0.5,
) -> StepVerdict:
    """A step holds when the shop accepted (nearly) every order, every accepted order reached
    its final state within the drain window (no growing backlog), and both the HTTP accept and
    the saga's p99 stayed within the bound. A generator that fell behind voids the step."""
    reasons: list[str] = []
    if step.planned and step.errors / step.planned > max_error_fraction:
        reasons.append(f"{step.errors} of {step.planned} requests not accepted")
    if step.completed < step.accepted:
        reasons.append(f"backlog: {step.accepted - step.completed} orders not final after drain")
    if step.final_latency is None:
        reasons.append("no order completed")
    elif step.final_latency.p99 > p99_bound_s:
        reasons.append(f"p99 {step.final_latency.p99:.3f}s over {p99_bound_s:g}s")
    if step.accept_latency is not None and step.accept_latency.p99 > p99_bound_s:
        reasons.append(f"HTTP accept p99 {step.accept_latency.p99:.3f}s over {p99_bound_s:g}s")
    if step.send_lag_max_s > max_send_lag_s:
        reasons.append(f"load generator fell {step.send_lag_max_s:.2f}s behind its schedule")
    return StepVerdict(passed=not reasons, reasons=reasons)


def select_knee(steps: Sequence[tuple[float, bool]]) -> float | None:
    """The highest rate that held below every rate that failed (a higher rate that passes
    after a lower one failed, by luck, does not count). ``steps``: (rate, passed), any order."""
    lowest_failure = min((rate for rate, passed in steps if not passed), default=math.inf)
    held = [rate for rate, passed in steps if passed and rate < lowest_failure]
    return max(held, default=None)


def next_rate(
    steps: Sequence[tuple[float, bool]], *, ceiling: float, floor: float, resolution: float
) -> float | None:
    """The rate to try next in the search for the knee, or None when it is found. ``steps``:
    (rate, passed) so far. Nothing held: half the lowest rate tried (not below ``floor``).
    Everything held: a third more than the highest, in steps of ``resolution`` (not above
    ``ceiling``). Else the middle between the knee and the lowest failure, until they are
    ``resolution`` apart."""
    if not steps:
        return None
    knee = select_knee(steps)
    failures = [rate for rate, passed in steps if not passed]
    if knee is None:
        lower = min(rate for rate, _ in steps) / 2
        return lower if lower >= floor else None
    if not failures:
        higher = knee + resolution * max(1, round(knee / 3 / resolution))
        return min(higher, ceiling) if knee < ceiling else None
    lowest_failure = min(failures)
    if lowest_failure - knee <= resolution:
        return None
    middle = knee + resolution * max(1, round((lowest_failure - knee) / 2 / resolution))
    return middle if middle < lowest_failure else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator
