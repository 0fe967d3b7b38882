"""A whole shop for fault injection, with a catalog and buyers ready for a stream of orders.

``make faults`` runs every case with more orders; ``make test`` runs a short selection. Tune with
SHOP_FAULTS_RATE (orders/s), SHOP_FAULTS_SECONDS (per case) and SHOP_FAULTS_CASES (comma list,
or ``all``).
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from stack.config import ROOT
from tests.e2e.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Shop,
    launcher,
    new_product,
    payment_method,
)
from tests.faults.invariants import Databases
from tests.faults.load import Buyer, Catalog

SHORT_CASES = "kill_payment_svc,kill_product_svc,sigterm_order_svc,redeliver,poison"


@dataclass
class FaultShop:
    shop: Shop
    databases: Databases
    catalog: Catalog
    buyers: list[Buyer]
    rate: float
    seconds: float

    def stack(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "stack", *args],
            env=self.shop.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"stack {' '.join(args)} failed:\n{result.stderr}"
        return result.stdout + result.stderr


def chosen_cases() -> list[str]:
    chosen = os.environ.get("SHOP_FAULTS_CASES", SHORT_CASES)
    return [] if chosen == "none" else chosen.split(",")


@pytest.fixture(scope="session")
def fault_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultShop]:
    kafka_port = int(os.environ.get("SHOP_FAULTS_KAFKA_PORT", 29792))
    env = {
        **os.environ,
        "SHOP_STATE_DIR": str(tmp_path_factory.mktemp("faults")),
        "SHOP_KAFKA_PORT": str(kafka_port),
        "SHOP_KAFKA_CONTROLLER_PORT": str(kafka_port + 1),
        "SHOP_PG_PORT": os.environ.get("SHOP_FAULTS_PG_PORT", "25734"),
        "SHOP_HTTP_PORT_OFFSET": os.environ.get("SHOP_FAULTS_HTTP_PORT_OFFSET", "600"),
        "SHOP_ADMIN_EMAIL": ADMIN_EMAIL,
        "SHOP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "RATE_LIMIT_PER_MINUTE": "100000",
        "REGISTRATIONS_PER_MINUTE": "100000",
        "CONSUMER_SESSION_TIMEOUT_MS": "10000",
        "ACCESS_TOKEN_TTL_S": "7200",
    }
    env.pop("DATABASE_URL", None)
    env.pop("JWT_SECRET", None)
    up = launcher(env, "up")
    if up.returncode != 0:
        launcher(env, "down")
        pytest.fail(f"the shop did not come up:\n{up.stdout}\n{up.stderr}")
    shop = Shop(f"http://127.0.0.1:{8000 + int(env['SHOP_HTTP_PORT_OFFSET'])}", env)
    try:
        admin = shop.admin()
        plenty = [new_product(admin, price=f"{n}.50", stock=1_000_000) for n in range(1, 6)]
        sold_out = new_product(admin, price="99.00", stock=0)
        buyers = []
        for n in range(12):
            customer = shop.customer(f"Buyer{n}-{uuid.uuid4().hex[:4]}")
            buyers.append(
                Buyer(
                    token=customer.tokens["access_token"],
                    card=payment_method(customer),
                    declining_card=payment_method(customer, "tok_decline"),
                )
            )
        yield FaultShop(
            shop=shop,
            databases=Databases(env["SHOP_PG_PORT"], f"127.0.0.1:{kafka_port}"),
            catalog=Catalog(plenty=plenty, sold_out=sold_out),
            buyers=buyers,
            rate=float(os.environ.get("SHOP_FAULTS_RATE", 10)),
            seconds=float(os.environ.get("SHOP_FAULTS_SECONDS", 6)),
        )
    finally:
        shop.http.close()
        launcher(env, "down")


FIGURES: list[dict[str, object]] = []
"""One row per case, printed at the end of the session."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault injection figures")
    columns = (
        "case",
        "sent",
        "accepted",
        "refused",
        "finished",
        "lost",
        "dup_effects",
        "dup_absorbed",
        "recovery_s",
    )
    write("  ".join(f"{c:>11}" if i else f"{c:<22}" for i, c in enumerate(columns)))
    for row in FIGURES:
        write(
            "  ".join(f"{row[c]!s:>11}" if i else f"{row[c]!s:<22}" for i, c in enumerate(columns))
        )
    total = {c: sum(int(row[c]) for row in FIGURES) for c in columns[1:-1]}  # type: ignore[call-overload]
    write("  ".join([f"{'all cases':<22}", *(f"{total[c]!s:>11}" for c in columns[1:-1])]))
