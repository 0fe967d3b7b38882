"""One bench run, start to end: the stack up, baselines, the shop's setup, the stepped order
load, reads, and the results."""

import asyncio
import contextlib
import os
import platform
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka.errors import KafkaError

from bench import baselines, probes, shop
from bench.baselines import Baselines
from bench.http_load import closed_loop
from bench.load import Mix, OrderStep, plan_orders, run_orders
from bench.options import Options
from bench.results import Results, StepRecord
from bench.stats import StepFigures, judge_step, next_rate, select_knee
from bench.tail import OrderTail
from stack import lifecycle
from stack.config import ROOT, StackConfig
from stack.progress import step
from stack.services import SERVICES

GATEWAY = next(service for service in SERVICES if service.name == "gateway_svc")
MIN_RATE = 2.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _host() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
    }


def bring_up(config: StackConfig) -> None:
    """``make up``'s own code; a stack that already runs is left as it is. Its summary goes to
    stderr: stdout is for the table."""
    with contextlib.redirect_stdout(sys.stderr):
        lifecycle.up(config)


class ShopBench:
    """The shop's part of the run, in one event loop: setup, steps, reads."""

    def __init__(self, config: StackConfig, options: Options, results: Results) -> None:
        self.config = config
        self.options = options
        self.results = results
        self.pg_url = probes.server_url(config)
        self.roots = probes.stack_roots(config)
        self.gateway = shop.Gateway(GATEWAY.url)
        self.run_id = shop.new_run_id()
        self.rng = random.Random(options.seed)

    async def run(self) -> None:
        options = self.options
        async with probes.KafkaOffsets(self.config.kafka_access()) as offsets:
            self.offsets = offsets
            try:
                await self._setup()
                await self._background(options)
                await self._steps()
                await self._reads()
            finally:
                await self.gateway.close()

    async def _setup(self) -> None:
        step("bench", f"setup: admin, catalog and {self.options.customers} customers...")
        self.admin = await shop.admin_login(self.gateway, self.config)
        self.catalog = await shop.build_catalog(self.gateway, self.admin, self.run_id)
        self.customers = await shop.customers(self.gateway, self.run_id, self.options.customers)
        await self._settled("setup", 120)

    async def _settled(self, what: str, timeout_s: float) -> float | None:
        """Wait until every service's consumer group has caught up; seconds it took."""
        started = time.monotonic()
        while True:
            lag = await self.offsets.lag()
            if not any(lag.values()):
                return round(time.monotonic() - started, 2)
            if time.monotonic() - started > timeout_s:
                step("bench", f"{what}: consumers still behind after {timeout_s:.0f}s: {lag}")
                return None
            await asyncio.sleep(0.25)

    async def _background(self, options: Options) -> None:
        """The services' idle transactions per second, measured while the baselines ran (they
        touch none of the services' databases) or, without baselines, over ten idle seconds;
        then their idle CPU over five seconds."""
        await asyncio.sleep(2)  # the setup's last counters reach the statistics
        before, started = probes.pg_counters(self.pg_url), time.monotonic()
        if options.baselines:
            self.results.baselines = await asyncio.to_thread(
                baselines.run_all, self.config, options
            )
        else:
            await asyncio.sleep(10)
        after, seconds = probes.pg_counters(self.pg_url), time.monotonic() - started
        idle = probes.delta(before.transactions(), after.transactions())
        self.results.background_transactions_per_s = {
            db: round(count / seconds, 2) for db, count in idle.items()
        }
        await self._settled("after the baselines", self.options.settle_s)
        cpu0, cpu_started = probes.cpu_seconds(self.roots), time.monotonic()
        await asyncio.sleep(5)
        idle_cpu = probes.cpu_delta(cpu0, probes.cpu_seconds(self.roots))
        cpu_seconds = time.monotonic() - cpu_started
        self.results.idle_cpu_per_s = {
            name: round(cpu / cpu_seconds, 4) for name, cpu in idle_cpu.items()
        }
        step(
            "bench",
            f"idle services: {sum(idle.values()) / seconds:.1f} txn/s, "
            f"{sum(self.results.idle_cpu_per_s.values()):.2f} cores",
        )

    async def _steps(self) -> None:
        options = self.options
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=500)
        tail = OrderTail(self.config.kafka_access())
        await tail.start()
        try:
            async with httpx.AsyncClient(base_url=GATEWAY.url, timeout=30, limits=limits) as http:
                warm = await self._orders(http, tail, options.warmup_rate, options.warmup_s)
                step("warm-up", f"{warm.accepted} orders: {warm.outcomes}")
                if not any("Paid" in outcome for outcome in warm.outcomes):
                    raise SystemExit(f"no warm-up order was paid: {warm.outcomes}; {warm.errors}")
                for rate in options.rates:
                    record = await self._step(http, tail, rate)
                    self.results.steps.append(record)
                    if not record.passed and not options.keep_going:
                        break
                await self._search_knee(http, tail)
            # An order that is merely slow is not lost: give the stragglers one more chance.
            unfinished = [i for record in self.results.steps for i in record.orders.unfinished]
            if unfinished:
                step("bench", f"{len(unfinished)} orders still unfinished; waiting for them...")
                await tail.wait_for(unfinished, options.settle_s)
            lost = tail.missing(unfinished)
        finally:
            await tail.stop()
        self.results.knee_rate = select_knee(
            [(record.orders.rate, record.passed) for record in self.results.steps]
        )
        self.results.accepted_orders = sum(record.orders.accepted for record in self.results.steps)
        for order_id in lost:
            found = await self.gateway.found(f"/orders/{order_id}", headers=self.admin.headers)
            self.results.lost_orders.append(
                {"id": order_id, "status": found["status"] if found else "not found"}
            )

    async def _sample_consumption(self, previous: dict[str, int], every_s: float = 5.0) -> None:
        peaks = self.results.peak_consume_per_s
        then = time.monotonic()
        while True:
            await asyncio.sleep(every_s)
            try:
                now, consumed = time.monotonic(), await self.offsets.consumed()
            except KafkaError:  # a broker slow to answer under load costs a sample, not the run
                continue
            for group, count in probes.delta(previous, consumed).items():
                peaks[group] = max(peaks.get(group, 0.0), round(count / (now - then), 1))
            previous, then = consumed, now

    async def _search_knee(self, http: httpx.AsyncClient, tail: OrderTail) -> None:
        """After the configured rates: halve below the first failure when nothing held (so a
        slow machine still gets a knee), climb past the last rate when everything held, and
        bisect between the knee and the lowest failure, down to the search's resolution."""
        options = self.options
        while (
            rate := next_rate(
                [(record.orders.rate, record.passed) for record in self.results.steps],
                ceiling=options.max_rate,
                floor=MIN_RATE,
                resolution=options.knee_resolution,
            )
        ) is not None:
            step("orders", f"searching the knee: {rate:g}/s next")
            self.results.steps.append(await self._step(http, tail, rate))

    async def _orders(
        self, http: httpx.AsyncClient, tail: OrderTail, rate: float, seconds: float
    ) -> OrderStep:
        plans = plan_orders(
            max(1, round(rate * seconds)),
            self.rng,
            customers=len(self.customers),
            catalog=self.catalog,
            mix=Mix(),
        )
        return await run_orders(
            http,
            tail,
            self.customers,
            plans,
            rate=rate,
            drain_s=self.options.drain_s,
            settle_s=self.options.settle_s,
            progress=lambda line: step("orders", line),
        )

    async def _step(self, http: httpx.AsyncClient, tail: OrderTail, rate: float) -> StepRecord:
        options = self.options
        await shop.refresh_tokens(self.gateway, [self.admin, *self.customers])
        topped = await shop.restock(self.gateway, self.admin, self.catalog)
        await self._settled("before the step", options.settle_s)
        restocked = f" ({topped} products restocked)" if topped else ""
        step("orders", f"{rate:g}/s for {options.step_s:g}s{restocked}")
        cpu0, pg0 = probes.cpu_seconds(self.roots), probes.pg_counters(self.pg_url)
        produced0, consumed0 = await self.offsets.produced(), await self.offsets.consumed()
        client0, started = time.process_time(), time.monotonic()

        sampler = asyncio.create_task(self._sample_consumption(consumed0))
        try:
            orders = await self._orders(http, tail, rate, options.step_s)
            lag = await self.offsets.lag()
            settle = await self._settled(f"{rate:g}/s", options.settle_s)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        await asyncio.sleep(1.5)  # backends publish their statistics at most once a second

        wall = time.monotonic() - started
        cpu = probes.cpu_delta(cpu0, probes.cpu_seconds(self.roots))
        pg1 = probes.pg_counters(self.pg_url)
        produced = probes.delta(produced0, await self.offsets.produced())
        consumed = probes.delta(consumed0, await self.offsets.consumed())
        client_cpu = time.process_time() - client0

        n = orders.accepted
        transactions = probes.delta(pg0.transactions(), pg1.transactions())
        idle = self.results.background_transactions_per_s
        net = {db: count - idle.get(db, 0.0) * wall for db, count in transactions.items()}
        background = sum(idle.values()) * wall
        cpu_total = round(sum(cpu.values()), 2)
        verdict = judge_step(
            StepFigures(
                rate=rate,
                planned=orders.planned,
                accepted=orders.accepted,
                errors=sum(orders.errors.values()),
                completed=orders.completed,
                final_latency=orders.final_latency,
                accept_latency=orders.accept_latency,
                send_lag_max_s=orders.send_lag_max_s,
            ),
            p99_bound_s=options.p99_bound_s,
        )
        record = StepRecord(
            orders=orders,
            passed=verdict.passed,
            reasons=verdict.reasons,
            wall_s=round(wall, 2),
            settle_s=settle,
            lag_after_drain=lag,
            cpu_s=cpu,
            cpu_total_s=cpu_total,
            cpu_per_order_s=round(cpu_total / n, 4) if n else None,
            idle_cpu_per_order_s=(
                round(sum(self.results.idle_cpu_per_s.values()) * wall / n, 4) if n else None
            ),
            cores_busy=round(cpu_total / wall, 2),
            client_cpu_s=round(client_cpu, 2),
            transactions=transactions,
            background_transactions=round(background, 1),
            transactions_per_order_by_db={db: round(c / n, 2) for db, c in net.items()}
            if n
            else {},
            transactions_per_order=round(sum(net.values()) / n, 2) if n else None,
            write_transactions_per_order=round((pg1.next_xid - pg0.next_xid) / n, 2) if n else None,
            produced=produced,
            messages_per_order=round(sum(produced.values()) / n, 2) if n else None,
            consumed=consumed,
            consumed_per_order={g: round(c / n, 2) for g, c in consumed.items()} if n else {},
            consume_per_s={g: round(c / orders.duration_s, 1) for g, c in consumed.items()},
        )
        final = orders.final_latency
        step(
            "orders",
            f"{rate:g}/s: {orders.accepted}/{orders.planned} accepted, "
            f"{orders.done_per_s:g}/s ended in the window, "
            + (f"drained {orders.drain_s}s, " if orders.drain_s is not None else "not drained, ")
            + (f"p99 {final.p99:.3f}s, " if final else "")
            + f"{record.cpu_per_order_s} CPU s/order -> "
            + ("held" if verdict.passed else "; ".join(verdict.reasons)),
        )
        return record

    async def _reads(self) -> None:
        options = self.options
        step(
            "reads",
            f"GET /products, {options.read_concurrency} clients, {options.read_visitors} "
            f"visitors, {options.read_s:g}s...",
        )
        self.results.reads = await closed_loop(
            GATEWAY.url,
            "/products",
            concurrency=options.read_concurrency,
            duration_s=options.read_s,
            visitors=options.read_visitors,
        )
        step("reads", f"{self.results.reads.per_s:,.0f} requests/s {self.results.reads.statuses}")


def run(options: Options) -> Results:
    config = StackConfig()
    results = Results(started_at=_now(), host=_host(), options=options, baselines=Baselines())
    bring_up(config)
    roots = probes.stack_roots(config)
    with probes.MemorySampler(roots) as memory:
        bench = ShopBench(config, options, results)
        asyncio.run(bench.run())
    results.memory = memory.peaks
    results.finished_at = _now()
    return results
