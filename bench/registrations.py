"""What a burst of registrations costs everyone else: ``GET /me`` read in a loop by one client
(ten times a second: within the gateway's rate limit), first alone, then while registrations
arrive at a fixed rate (each one an Argon2 hash in user_svc). Against a running stack's gateway.

``python -m bench.registrations [--rate 15] [--seconds 20] [--idle-seconds 5]``
"""

import argparse
import asyncio
import itertools
import sys
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp
import orjson

from bench import shop
from bench.http_load import loopback_addresses
from bench.load import fire_at_rate
from bench.stats import Latency
from stack.services import SERVICES

GATEWAY = next(service for service in SERVICES if service.name == "gateway_svc")


@dataclass
class Phase:
    """One phase's answers: their latencies (seconds) and every outcome by status."""

    latency: Latency | None
    outcomes: dict[str, int]


async def read_me(
    http: aiohttp.ClientSession, customer: shop.Customer, stop: asyncio.Event, every_s: float
) -> Phase:
    """``GET /me`` every ``every_s`` (or as soon as the one before answered, if later) until
    ``stop`` is set. Every answer counts in the latency: a 503 after the gateway's wait for
    user_svc is a read that client waited for and did not get."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    while not stop.is_set():
        started = time.perf_counter()
        try:
            async with http.get("/me", headers=customer.headers) as response:
                await response.read()
                outcome = str(response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = type(exc).__name__
        outcomes[outcome] += 1
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(max(0.0, started + every_s - time.perf_counter()))
    return Phase(Latency.of(latencies), dict(outcomes))


async def register_at_rate(
    base_url: str, run_id: str, *, rate: float, seconds: float, visitors: int
) -> tuple[Phase, Phase]:
    """``rate`` registrations a second for ``seconds``, open loop (each from its scheduled
    time, whatever the ones before answered), from ``visitors`` loopback addresses in turn so
    that no per-address limit bounds them. The accounts created (201), and the others: refused
    at once, or after the gateway's wait for user_svc."""
    latencies: dict[bool, list[float]] = {True: [], False: []}
    outcomes: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    sessions = [
        aiohttp.ClientSession(
            base_url=base_url,
            timeout=aiohttp.ClientTimeout(total=30),
            connector=aiohttp.TCPConnector(limit=0, local_addr=(address, 0)),
        )
        for address in loopback_addresses(visitors)
    ]
    turns = itertools.cycle(sessions)

    async def register(index: int, scheduled_at: float) -> None:
        body = {
            "name": f"Burst {index}",
            "email": f"burst-{run_id}-{index}@example.com",
            "password": shop.PASSWORD,
        }
        try:
            async with next(turns).post(
                "/auth/register",
                data=orjson.dumps(body),
                headers={
                    "Content-Type": "application/json",
                    # each from an address of its own: the gateway limits accounts per address
                    "X-Forwarded-For": f"127.2.{index // 256 % 256}.{index % 256}",
                },
            ) as response:
                await response.read()
                outcome = str(response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = type(exc).__name__
        created = outcome == "201"
        outcomes[created][outcome] += 1
        latencies[created].append(time.time() - scheduled_at)

    try:
        await fire_at_rate(rate, round(rate * seconds), register)
    finally:
        await asyncio.gather(*(session.close() for session in sessions))
    created, other = (Phase(Latency.of(latencies[c]), dict(outcomes[c])) for c in (True, False))
    return created, other


async def measure(
    base_url: str, *, rate: float, seconds: float, idle_s: float, visitors: int, read_every_s: float
) -> dict[str, Phase]:
    gateway = shop.Gateway(base_url)
    run_id = shop.new_run_id()
    email = f"reader-{run_id}@example.com"
    try:
        await gateway.call(
            "POST",
            "/auth/register",
            json={"name": "Reader", "email": email, "password": shop.PASSWORD},
        )
        reader = await shop.login(gateway, email, shop.PASSWORD)
    finally:
        await gateway.close()
    async with aiohttp.ClientSession(
        base_url=base_url, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:
        stop = asyncio.Event()
        alone = asyncio.create_task(read_me(http, reader, stop, read_every_s))
        await asyncio.sleep(idle_s)
        stop.set()
        phases = {"/me alone": await alone}
        stop = asyncio.Event()
        during = asyncio.create_task(read_me(http, reader, stop, read_every_s))
        created, other = await register_at_rate(
            base_url, run_id, rate=rate, seconds=seconds, visitors=visitors
        )
        stop.set()
        phases["/me during the registrations"] = await during
        phases["POST /auth/register, created (from schedule)"] = created
        phases["POST /auth/register, not created"] = other
    return phases


def render(phases: dict[str, Phase]) -> str:
    lines = [f"{'':<48}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}  outcomes"]
    for name, phase in phases.items():
        figures = phase.latency
        if figures is None:
            row = f"{name:<48}{0:>7}" + f"{'-':>9}" * 4
        else:
            row = f"{name:<48}{figures.count:>7}" + "".join(
                f"{value * 1000:>9.0f}"
                for value in (figures.p50, figures.p95, figures.p99, figures.max)
            )
        outcomes = sorted(phase.outcomes.items())
        lines.append(f"{row}  " + ", ".join(f"{status}: {count}" for status, count in outcomes))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.registrations", description=__doc__)
    parser.add_argument("--gateway", default=GATEWAY.url, help=f"default {GATEWAY.url}")
    parser.add_argument("--rate", type=float, default=15.0, help="registrations a second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long they arrive")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="/me alone, before")
    parser.add_argument("--visitors", type=int, default=32, help="loopback addresses")
    parser.add_argument("--read-every", type=float, default=0.1, help="seconds between reads")
    args = parser.parse_args(argv)
    phases = asyncio.run(
        measure(
            args.gateway,
            rate=args.rate,
            seconds=args.seconds,
            idle_s=args.idle_seconds,
            visitors=args.visitors,
            read_every_s=args.read_every,
        )
    )
    sys.stdout.write(render(phases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
