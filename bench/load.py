"""The open-loop order load: orders arrive at a fixed rate whatever the shop answers, and each
order's outcome is read off ``orders.events`` rather than polled, so measuring adds no load to
the gateway."""

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import orjson

from bench.shop import Catalog, Customer
from bench.stats import Latency
from bench.tail import Final, OrderTail, hop_latencies

OK, DECLINE, SCARCE = "ok", "decline", "scarce"


# --- what to order -------------------------------------------------------------------------


@dataclass(frozen=True)
class Mix:
    """Shares of orders: the rest pay. ``hot_share`` of the items are one of the few hot
    products (they contend for the same stock rows)."""

    decline: float = 0.10
    scarce: float = 0.05
    hot_share: float = 0.5
    max_items: int = 3
    max_quantity: int = 2


@dataclass(frozen=True)
class PlannedOrder:
    kind: str
    """ok (expected Paid), decline (the declined card), scarce (the product that runs out)."""
    customer: int
    items: tuple[tuple[str, int], ...]


def plan_orders(
    count: int, rng: random.Random, *, customers: int, catalog: Catalog, mix: Mix
) -> list[PlannedOrder]:
    plans = []
    for _ in range(count):
        roll = rng.random()
        kind = SCARCE if roll < mix.scarce else DECLINE if roll < mix.scarce + mix.decline else OK
        customer = rng.randrange(customers)
        if kind == SCARCE:
            plans.append(PlannedOrder(kind, customer, ((catalog.scarce, 1),)))
            continue
        items: dict[str, int] = {}
        for _ in range(rng.randint(1, mix.max_items)):
            pool = catalog.hot if rng.random() < mix.hot_share else catalog.regular
            items[rng.choice(pool)] = rng.randint(1, mix.max_quantity)
        plans.append(PlannedOrder(kind, customer, tuple(sorted(items.items()))))
    return plans


# --- the open loop -------------------------------------------------------------------------


@dataclass
class Sample:
    kind: str
    customer: int
    scheduled_at: float
    answered_at: float | None = None
    outcome: str = ""
    """The HTTP status, or the client error's name."""
    order_id: str | None = None


async def fire_at_rate(
    rate: float, count: int, fire: Callable[[int, float], Coroutine[Any, Any, None]]
) -> float:
    """Call ``fire(i, scheduled wall time)`` for i in 0..count-1 at ``rate`` per second, on a
    schedule fixed up front, never waiting for an earlier call; returns once all are done, with
    how late (seconds) the latest call started."""
    loop = asyncio.get_running_loop()
    to_wall = time.time() - loop.time()
    start = loop.time() + 0.05
    running: set[asyncio.Task[None]] = set()
    late = 0.0
    for index in range(count):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        late = max(late, loop.time() - due)
        task = asyncio.create_task(fire(index, due + to_wall))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.wait(set(running))
    return late


@dataclass
class OrderStep:
    """One step's orders, from the client's side and from orders.events."""

    rate: float
    duration_s: float
    planned: int
    accepted: int
    errors: dict[str, int]
    completed: int
    """Accepted orders whose final event had arrived when the drain window closed."""
    unfinished: list[str]
    """Accepted orders that never ended, even after the settle time: lost."""
    send_lag_max_s: float
    drain_s: float | None
    """From the end of the schedule until the last accepted order ended (None: not drained
    within the drain window)."""
    done_per_s: float
    """Orders that ended within the schedule's window, per second of it."""
    final_latency: Latency | None
    """From the scheduled send to the order's final event."""
    accept_latency: Latency | None
    """From the scheduled send to the 202."""
    outcomes: dict[str, int] = field(default_factory=dict)
    hops: dict[str, Latency] = field(default_factory=dict)
    """A paid order's path, hop by hop (see bench.tail.PATH), over the step's orders."""


def _label(final: Final) -> str:
    reason = (final.reason or "").lower()
    if final.type == "OrderCancelled":
        if "stock" in reason:
            return "Cancelled (out of stock)"
        if "declin" in reason:
            return "Cancelled (declined)"
    return final.type.removeprefix("Order")


async def run_orders(
    http: httpx.AsyncClient,
    tail: OrderTail,
    customers: Sequence[Customer],
    plans: Sequence[PlannedOrder],
    *,
    rate: float,
    drain_s: float,
    settle_s: float,
    progress: Callable[[str], None] | None = None,
) -> OrderStep:
    samples: list[Sample] = []

    async def report_progress() -> None:
        while progress is not None:
            await asyncio.sleep(10)
            ids = [sample.order_id for sample in samples if sample.order_id is not None]
            progress(
                f"{len(samples)} sent, {len(ids)} accepted, {len(ids) - len(tail.missing(ids))}"
                " ended"
            )

    async def fire(index: int, scheduled_at: float) -> None:
        plan = plans[index]
        customer = customers[plan.customer]
        sample = Sample(plan.kind, plan.customer, scheduled_at)
        samples.append(sample)
        body = {
            "items": [{"product_id": p, "quantity": q} for p, q in plan.items],
            "payment_method_id": customer.decline if plan.kind == DECLINE else customer.visa,
        }
        try:
            async with orders_http.post(
                "/orders",
                data=orjson.dumps(body),
                headers={
                    **customer.headers,
                    "Content-Type": "application/json",
                    "Idempotency-Key": uuid.uuid4().hex,
                },
            ) as response:
                status, answer = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            sample.outcome = type(exc).__name__
            return
        sample.answered_at = time.time()
        sample.outcome = str(status)
        if status == 202:
            sample.order_id = str(orjson.loads(answer)["id"])

    count = len(plans)
    duration = count / rate
    started = time.time()
    reporter = asyncio.create_task(report_progress())
    # The orders go out through aiohttp: its client costs a fifth of httpx's CPU per request,
    # and on a shared machine the load generator's CPU is taken from the shop.
    orders_http = aiohttp.ClientSession(
        base_url=str(http.base_url),
        timeout=aiohttp.ClientTimeout(total=http.timeout.read or 30),
        connector=aiohttp.TCPConnector(limit=0),
    )
    try:
        late = await fire_at_rate(rate, count, fire)
    finally:
        reporter.cancel()
        await orders_http.close()
    schedule_end = started + 0.05 + duration
    accepted = [s for s in samples if s.order_id is not None]
    ids = [s.order_id for s in accepted if s.order_id is not None]
    drained = await tail.wait_for(ids, max(0.0, schedule_end + drain_s - time.time()))
    completed = len(ids) - len(tail.missing(ids))
    if not drained:
        await tail.wait_for(ids, settle_s)
    finals = {order_id: tail.finals[order_id] for order_id in ids if order_id in tail.finals}
    last_end = max((final.event_at for final in finals.values()), default=schedule_end)

    final_latency, accept_latency = [], []
    outcomes: Counter[str] = Counter()
    for sample in samples:
        if sample.answered_at is not None:
            accept_latency.append(sample.answered_at - sample.scheduled_at)
        final = finals.get(sample.order_id or "")
        if final is None or sample.answered_at is None:
            continue
        # from the client's send, as its user feels it: the 202 itself comes once order_svc
        # has recorded the order, so a latency from the 202 would leave a hop out
        final_latency.append(max(0.0, final.event_at - sample.scheduled_at))
        outcomes[f"{sample.kind}: {_label(final)}"] += 1
    errors = Counter(s.outcome for s in samples if s.order_id is None)
    hops = hop_latencies(tail.path_stamps, ids)
    for order_id in ids:
        tail.path_stamps.pop(order_id, None)
    in_window = sum(1 for final in finals.values() if final.event_at <= schedule_end)
    return OrderStep(
        rate=rate,
        duration_s=round(duration, 3),
        planned=count,
        accepted=len(ids),
        errors=dict(errors),
        completed=completed,
        unfinished=tail.missing(ids),
        send_lag_max_s=round(late, 4),
        drain_s=round(max(0.0, last_end - schedule_end), 3) if drained else None,
        done_per_s=round(in_window / duration, 1),
        final_latency=Latency.of(final_latency),
        accept_latency=Latency.of(accept_latency),
        outcomes=dict(sorted(outcomes.items())),
        hops=hops,
    )
