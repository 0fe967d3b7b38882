"""How a fault felt from outside, read back from order_svc once the shop has settled: how long
until the restarted service completed an order again, how long the orders sent during the fault
took, and how long after it the orders it caught were all final."""

from collections.abc import Mapping
from dataclasses import dataclass

from bench.stats import percentile
from tests.faults.invariants import Databases

AFTER_S = 3.0
"""Orders sent this long after a fault ended still count as sent during it: they meet its
backlog."""
BEFORE_S = 5.0
"""Orders sent this long before a fault began may be caught in it (in flight when it struck)."""


@dataclass(frozen=True)
class FaultWindow:
    """One fault: ``started`` and ``ended`` on the wall clock (PostgreSQL's), ``service`` the
    one restarted, if any."""

    name: str
    started: float
    ended: float
    service: str | None = None


def fault_figures(
    databases: Databases, sent_at: Mapping[str, float], fault: FaultWindow
) -> dict[str, float | None]:
    """``first_order_s``: from the end of the fault (a restart: its command's return) to the
    first order completed through ``fault.service`` afterwards (through the shop for none);
    ``p50_s``, ``p99_s``: from the client's send to the final state, of the orders sent during
    the fault; ``backlog_s``: from the end of the fault until every order it caught was final.
    An order not final is left out (it is counted lost elsewhere)."""
    during = {o: t for o, t in sent_at.items() if fault.started <= t <= fault.ended + AFTER_S}
    caught = [o for o, t in sent_at.items() if fault.started - BEFORE_S <= t <= fault.ended]
    finished = databases.finished_at([*during, *caught])
    latencies = [finished[o] - t for o, t in during.items() if o in finished]
    caught_done = [finished[o] for o in caught if o in finished]
    return {
        "fault_s": fault.ended - fault.started,
        "first_order_s": databases.first_completed_after(fault.service, fault.ended),
        "p50_s": percentile(latencies, 50) if latencies else None,
        "p99_s": percentile(latencies, 99) if latencies else None,
        "backlog_s": max(0.0, max(caught_done) - fault.ended) if caught_done else None,
    }


def shown(value: object) -> str:
    """A figure as the tables print it: seconds to a tenth, nothing as ``-``."""
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)
