"""The fault suite's shop, started once per session (``tests/faults/shop.py``), and its figures
printed at the end and written to ``.cache/faults/figures.json``.

``make faults`` runs every case with more orders; ``make test`` runs a short selection. Tune with
SHOP_FAULTS_RATE (orders/s), SHOP_FAULTS_SECONDS (per case) and SHOP_FAULTS_CASES (comma list,
or ``all``).
"""

import json
import os
from collections.abc import Iterator

import pytest

from stack.config import ROOT
from tests.faults.figures import shown
from tests.faults.shop import FaultShop, ShopDidNotStartError, running_fault_shop

SHORT_CASES = (
    "kill_payment_svc,kill_product_svc,sigterm_order_svc,redeliver,poison,provider_errors,"
    "failover_kill_busiest_broker,failover_kill_one_replica_each"
)
SOAK = "soak"
"""The short soak's name in SHOP_FAULTS_CASES (``all`` includes it)."""
FIGURES_FILE = ROOT / ".cache" / "faults" / "figures.json"


def chosen_cases() -> list[str]:
    chosen = os.environ.get("SHOP_FAULTS_CASES", SHORT_CASES)
    return [] if chosen == "none" else chosen.split(",")


def faults_rate() -> float:
    return float(os.environ.get("SHOP_FAULTS_RATE", 10))


def faults_seconds() -> float:
    return float(os.environ.get("SHOP_FAULTS_SECONDS", 6))


@pytest.fixture(scope="session")
def fault_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultShop]:
    try:
        with running_fault_shop(tmp_path_factory.mktemp("faults")) as shop:
            yield shop
    except ShopDidNotStartError as exc:
        pytest.fail(str(exc))


FIGURES: list[dict[str, object]] = []
"""One row per case, printed at the end of the session."""
COLUMNS = (
    "case",
    "sent",
    "accepted",
    "refused",
    "finished",
    "lost",
    "dup_effects",
    "dup_absorbed",
    "recovery_s",
    "fault_s",
    "first_order_s",
    "p50_s",
    "p99_s",
    "backlog_s",
)
"""recovery_s: from the end of the fault and of the stream until everything settled; the others
as ``tests.faults.figures.fault_figures`` states them."""
SUMMED = COLUMNS[1:8]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    FIGURES_FILE.write_text(json.dumps(FIGURES, indent=2))
    write = terminalreporter.write_line
    terminalreporter.section("fault injection figures")
    write(_line(COLUMNS))
    for row in FIGURES:
        write(_line([shown(row[c]) for c in COLUMNS]))
    total = {c: sum(int(row[c]) for row in FIGURES) for c in SUMMED}  # type: ignore[call-overload]
    write(_line(["all cases", *(str(total[c]) for c in SUMMED)]))
    write(f"(written to {FIGURES_FILE})")


def _line(cells: Iterator[str] | tuple[str, ...] | list[str]) -> str:
    return "  ".join(f"{c:>13}" if i else f"{c:<22}" for i, c in enumerate(cells))
