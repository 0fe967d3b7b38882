"""A closed-loop HTTP load: a fixed number of clients, each sending its next request as soon
as the previous one answered. The same client measures the gateway's reads and the trivial
endpoint, so their ratio compares the servers, not two clients. aiohttp: of the Python clients,
the one that takes least CPU from the servers on a shared machine."""

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp

from bench.stats import Latency

T = TypeVar("T")


@dataclass
class ReadFigures:
    url: str
    concurrency: int
    duration_s: float
    requests: int
    ok: int
    per_s: float
    """Successful (2xx) answers per second."""
    statuses: dict[str, int] = field(default_factory=dict)
    latency: Latency | None = None
    client_cpu_s: float = 0.0
    """CPU the bench process itself used meanwhile: near one core means the client, not the
    server, set the pace."""
    visitors: int = 1
    """The loopback addresses the requests came from."""


async def closed_loop(
    base_url: str,
    path: str,
    *,
    concurrency: int,
    duration_s: float,
    visitors: int = 1,
    warmup_s: float = 1.0,
) -> ReadFigures:
    """``concurrency`` clients GET ``path`` for ``warmup_s`` (not counted), then ``duration_s``.

    The requests come from ``visitors`` loopback addresses (127.0.0.2 and up; ``base_url`` must
    be on the loopback), each client taking its own share of them in turn: as many anonymous
    visitors, so that a per-address rate limit bounds no one of them (the gateway allows each
    20 requests a second by default)."""
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    sessions = [
        aiohttp.ClientSession(
            base_url=base_url,
            timeout=aiohttp.ClientTimeout(total=30),
            connector=aiohttp.TCPConnector(limit=concurrency, local_addr=(address, 0)),
        )
        for address in loopback_addresses(visitors)
    ]
    try:
        loop = asyncio.get_running_loop()
        measure_from = loop.time() + warmup_s
        stop_at = measure_from + duration_s

        async def client(turns: Iterator[aiohttp.ClientSession]) -> None:
            while (started := loop.time()) < stop_at:
                try:
                    async with next(turns).get(path) as response:
                        await response.read()
                        status = str(response.status)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status = type(exc).__name__
                if started >= measure_from:
                    statuses[status] += 1
                    if status.startswith("2"):
                        latencies.append(loop.time() - started)

        warm = asyncio.gather(
            *(client(itertools.cycle(share)) for share in shares(sessions, concurrency))
        )
        await asyncio.sleep(max(0.0, measure_from - loop.time()))
        cpu_before = time.process_time()
        await warm
        client_cpu = time.process_time() - cpu_before
    finally:
        await asyncio.gather(*(session.close() for session in sessions))
    ok = sum(count for status, count in statuses.items() if status.startswith("2"))
    return ReadFigures(
        url=f"{base_url}{path}",
        concurrency=concurrency,
        duration_s=duration_s,
        requests=sum(statuses.values()),
        ok=ok,
        per_s=round(ok / duration_s, 1),
        statuses=dict(statuses),
        latency=Latency.of(latencies),
        client_cpu_s=round(client_cpu, 2),
        visitors=visitors,
    )


def loopback_addresses(count: int) -> list[str]:
    """``count`` distinct addresses of 127.0.0.0/8, from 127.0.0.2 (Linux answers on them all)."""
    if not 1 <= count <= 250 * 250:
        raise ValueError(f"between 1 and 62,500 visitors, not {count}")
    return [f"127.0.{n // 250}.{n % 250 + 2}" for n in range(count)]


def shares(items: Sequence[T], clients: int) -> list[list[T]]:
    """Each of ``clients`` its own items in turn (item i to client i mod clients), or, with
    fewer items than clients, one item each, shared round the items."""
    if len(items) < clients:
        return [[items[n % len(items)]] for n in range(clients)]
    return [list(items[n::clients]) for n in range(clients)]
