"""``make soak``: a long stream of orders under random faults, on the fault suite's shop.

Faults are drawn from a seeded random plan (the seed is printed; SHOP_SOAK_SEED replays it):
``kill -9`` of a random service every 30 to 90 s of the stream, SIGTERM restarts, a broker and a
PostgreSQL restart, provider errors after capture, and a dead letter re-driven; a few % of the
orders are cancelled by their customer right after acceptance. Every SHOP_SOAK_CHECK_EVERY
orders and at the end the stream pauses, the shop settles, and the fault suite's invariants and
the provider's reconciliation are checked. Figures are printed and written to
``.cache/soak/<timestamp>.json`` (the shop's logs stay in ``.cache/soak/run``); the exit status
is 1 if an order was lost, an effect doubled, or a check or the reconciliation found anything.

SHOP_SOAK_ORDERS (100,000) orders at SHOP_SOAK_RATE (60) per second; ports as the fault suite's
(SHOP_FAULTS_KAFKA_PORT, SHOP_FAULTS_PG_PORT, SHOP_FAULTS_HTTP_PORT_OFFSET).
"""

import asyncio
import json
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stack import dlq
from stack.config import ROOT
from tests.e2e.conftest import launcher
from tests.faults.figures import FaultWindow, fault_figures, shown
from tests.faults.load import CANCEL_SHARE, OrderStream, Tally
from tests.faults.shop import SERVICES, FaultShop, running_fault_shop

KILL_EVERY_S = (30.0, 90.0)
SIGTERM_EVERY_S = 300.0
"""One SIGTERM restart per this much of the stream (one at least)."""
ONCE = ("broker_restart", "database_restart", "provider_errors", "dead_letter_redrive")
PROVIDER_ERRORS = "error_after_capture=0.2,timeout_after_capture=0.05"
PROVIDER_ERRORS_S = 15.0
PROVIDER_DOWN_S = 5.0
"""Long enough for payment_svc to dead-letter a few StockReserved after its tries."""


@dataclass(frozen=True)
class Planned:
    at_s: float
    """Seconds into the stream (orders sent / rate, pauses left out); it strikes then, or once
    the fault before it has ended."""
    kind: str
    service: str | None = None


@dataclass
class Checkpoint:
    orders_sent: int
    accepted: int
    final: int
    lost: int
    doubled_effects: int
    problems: list[str]
    reconciliation: str
    settle_s: float


@dataclass
class SoakReport:
    seed: int
    orders: int
    rate: float
    cancels: dict[int, int] = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    dead_letters_redriven: int = 0

    @property
    def last(self) -> Checkpoint:
        return self.checkpoints[-1]

    def failed(self) -> bool:
        return any(c.lost or c.doubled_effects or c.problems for c in self.checkpoints) or any(
            c.reconciliation.startswith("differences") for c in self.checkpoints
        )


def plan(chance: random.Random, duration_s: float) -> list[Planned]:
    """The faults of a run of ``duration_s`` seconds of stream, in the order they come."""
    planned = []
    at = min(chance.uniform(*KILL_EVERY_S), 0.4 * duration_s)  # a short run has one too
    while at < duration_s:
        planned.append(Planned(at, "kill", chance.choice(SERVICES)))
        at += chance.uniform(*KILL_EVERY_S)
    for _ in range(max(1, int(duration_s // SIGTERM_EVERY_S))):
        planned.append(
            Planned(chance.uniform(0.05, 0.7) * duration_s, "sigterm", chance.choice(SERVICES))
        )
    planned += [Planned(chance.uniform(0.05, 0.7) * duration_s, kind) for kind in ONCE]
    return sorted(planned, key=lambda p: p.at_s)


class Soak:
    def __init__(self, fs: FaultShop, *, orders: int, rate: float, seed: int, every: int) -> None:
        self._fs = fs
        self._orders = orders
        self._rate = rate
        self._every = every
        self._plan = plan(random.Random(seed), orders / rate)
        self._stream = OrderStream(
            fs.shop.url, fs.buyers, fs.catalog, rate, seed=seed, cancel_share=CANCEL_SHARE
        )
        self._handled = {  # letters from before the soak (the fault suite's poison) are not its own
            service: {letter.offset for letter in self._letters(service)}
            for service in dlq.ALL_SERVICES
        }
        self.report = SoakReport(seed=seed, orders=orders, rate=rate)

    def run(self) -> SoakReport:
        try:
            for until in [*range(self._every, self._orders, self._every), self._orders]:
                self._segment(until)
        finally:
            self._stream.stop()
            self._fs.provider_faults("off")
        self.report.faults += [{"kind": p.kind, "note": "not reached"} for p in self._plan]
        return self.report

    def _segment(self, until: int) -> None:
        """Orders up to ``until`` in all, the faults that fall due meanwhile, then a check."""
        done_before = len(self.report.faults)
        self._stream.until = until
        self._stream.start()
        while self._stream.running():
            if self._plan and self._plan[0].at_s <= self._stream.launched / self._rate:
                self._inject(self._plan.pop(0))
            else:
                time.sleep(0.5)
        tally = self._stream.wait()
        self._redrive_dead_letters()
        self._check(tally)
        for fault in self.report.faults[done_before:]:
            window = fault.pop("window")
            fault.update(fault_figures(self._fs.databases, tally.sent_at, window))

    def _inject(self, planned: Planned) -> None:
        print(f"[{time.strftime('%X')}] {planned.kind} {planned.service or ''}", flush=True)
        started = time.time()
        at_s = self._stream.launched / self._rate
        note = ""
        service = planned.service
        if planned.kind == "kill":
            self._fs.kill_and_restart(planned.service or "")
        elif planned.kind == "sigterm":
            self._fs.sigterm_restart(planned.service or "")
        elif planned.kind == "broker_restart":
            self._fs.restart_broker()
        elif planned.kind == "database_restart":
            self._fs.restart_database()
        elif planned.kind == "provider_errors":
            service = "payment_svc"
            note = self._provider_window(PROVIDER_ERRORS, PROVIDER_ERRORS_S)
        elif planned.kind == "dead_letter_redrive":
            service = "payment_svc"
            note = self._dead_letter_redriven()
        window = FaultWindow(planned.kind, started, time.time(), service)
        self.report.faults.append(
            {
                "kind": planned.kind,
                "service": service,
                "at_s": round(at_s, 1),
                "note": note,
                "window": window,
            }
        )

    def _provider_window(self, spec: str, seconds: float) -> str:
        self._fs.provider_window(spec, seconds)
        return f"{spec} for {seconds:.0f} s"

    def _dead_letter_redriven(self) -> str:
        """The provider down long enough for payment_svc to dead-letter some StockReserved;
        once it is back, one of them re-driven (the rest at the next check)."""
        before = {letter.offset for letter in self._letters("payment_svc")}
        note = self._provider_window("unavailable=1", PROVIDER_DOWN_S)
        new = self._fs.new_dead_letters("payment_svc", before)
        if not new:
            return f"{note}; nothing dead-lettered (retried instead)"
        self._redrive("payment_svc", [new[0].offset])
        return f"{note}; {len(new)} dead-lettered, offset {new[0].offset} re-driven"

    def _redrive_dead_letters(self) -> None:
        """Every dead letter not re-driven yet, as an operator would once the cause is mended:
        an order parked there is not lost, but it must complete once re-driven."""
        for service in dlq.ALL_SERVICES:
            letters = [x.offset for x in self._letters(service)]
            waiting = [offset for offset in letters if offset not in self._handled[service]]
            if waiting:
                self._redrive(service, waiting)

    def _redrive(self, service: str, offsets: list[int]) -> None:
        self._fs.stack("dlq", "redrive", service, *map(str, offsets))
        self._handled[service].update(offsets)
        self.report.dead_letters_redriven += len(offsets)

    def _letters(self, service: str) -> list[dlq.DeadLetter]:
        return asyncio.run(dlq.read(self._fs.kafka_access, service))

    def _check(self, tally: Tally) -> None:
        databases = self._fs.databases
        settle_s = databases.wait_until_settled(tally.accepted, timeout_s=600)
        findings = databases.check(tally.accepted)
        checkpoint = Checkpoint(
            orders_sent=tally.sent,
            accepted=len(tally.accepted),
            final=len(tally.accepted) - len(findings.lost),
            lost=len(findings.lost),
            doubled_effects=findings.duplicated_effects,
            problems=findings.problems(),
            reconciliation=self._reconcile(),
            settle_s=round(settle_s, 1),
        )
        self.report.checkpoints.append(checkpoint)
        self.report.cancels = dict(tally.cancels)
        print(f"[{time.strftime('%X')}] check: {checkpoint}", flush=True)

    def _reconcile(self) -> str:
        """``python -m stack reconcile``, as an operator would run it."""
        result = launcher(self._fs.shop.env, "reconcile")
        if result.returncode == 0:
            return "clean"
        return f"differences:\n{result.stdout}{result.stderr}"


def summary(report: SoakReport) -> str:
    last = report.last
    lines = [
        f"soak: seed {report.seed}, {report.orders} orders at {report.rate:g}/s",
        f"  sent {last.orders_sent}, accepted {last.accepted}, final {last.final}, "
        f"lost {last.lost}, doubled effects {last.doubled_effects}",
        f"  cancellations asked (by answer): {report.cancels}; "
        f"dead letters re-driven: {report.dead_letters_redriven}",
        f"  reconciliation: {last.reconciliation}",
        *(f"  problem: {problem}" for c in report.checkpoints for problem in c.problems),
        f"  {'fault':<20}{'service':<18}{'at_s':>8}{'fault_s':>9}{'first_order_s':>15}"
        f"{'p50_s':>8}{'p99_s':>8}{'recovery_s':>12}  note",
    ]
    for fault in report.faults:
        cells = [fault.get(k) for k in ("at_s", "fault_s", "first_order_s", "p50_s", "p99_s")]
        widths = (8, 9, 15, 8, 8)
        lines.append(
            f"  {fault['kind']:<20}{fault.get('service') or '-':<18}"
            + "".join(f"{shown(v):>{w}}" for v, w in zip(cells, widths, strict=True))
            + f"{shown(fault.get('backlog_s')):>12}  {fault.get('note', '')}"
        )
    return "\n".join(lines)


def write(report: SoakReport) -> Path:
    folder = ROOT / ".cache" / "soak"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(asdict(report), indent=2, default=str))
    return path


def soak(fs: FaultShop, *, orders: int, rate: float) -> SoakReport:
    """One soak on a running shop, from the environment's settings; printed and written."""
    seed = int(os.environ.get("SHOP_SOAK_SEED") or random.randrange(1_000_000))
    every = int(os.environ.get("SHOP_SOAK_CHECK_EVERY", 10_000))
    print(f"soak: seed {seed} (SHOP_SOAK_SEED={seed} replays the plan)", flush=True)
    report = Soak(fs, orders=orders, rate=rate, seed=seed, every=every).run()
    print(summary(report), flush=True)
    print(f"  written to {write(report)}", flush=True)
    return report


def main() -> int:
    orders = int(os.environ.get("SHOP_SOAK_ORDERS", 100_000))
    rate = float(os.environ.get("SHOP_SOAK_RATE", 60))
    state_dir = ROOT / ".cache" / "soak" / "run"  # the last run's logs stay for a look
    shutil.rmtree(state_dir, ignore_errors=True)
    with running_fault_shop(state_dir) as fs:
        report = soak(fs, orders=orders, rate=rate)
    return 1 if report.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
