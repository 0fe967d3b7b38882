"""A closed-loop HTTP load: a fixed number of clients, each sending its next request as soon
as the previous one answered. The same client measures the gateway's reads and the trivial
endpoint, so their ratio compares the servers, not two clients. aiohttp: of the Python clients,
the one that takes least CPU from the servers on a shared machine."""

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

from bench.stats import Latency


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


async def closed_loop(
    base_url: str,
    path: str,
    *,
    concurrency: int,
    duration_s: float,
    headers: Sequence[Mapping[str, str]] = ({},),
    warmup_s: float = 1.0,
) -> ReadFigures:
    """``concurrency`` clients GET ``path`` for ``warmup_s`` (not counted), then ``duration_s``.
    Successive requests take their headers from ``headers`` in turn (e.g. many users' tokens)."""
    turns = itertools.cycle(headers)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    async with aiohttp.ClientSession(
        base_url=base_url,
        timeout=aiohttp.ClientTimeout(total=30),
        connector=aiohttp.TCPConnector(limit=concurrency),
    ) as http:
        loop = asyncio.get_running_loop()
        measure_from = loop.time() + warmup_s
        stop_at = measure_from + duration_s

        async def client() -> None:
            while (started := loop.time()) < stop_at:
                try:
                    async with http.get(path, headers=dict(next(turns))) as response:
                        await response.read()
                        status = str(response.status)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status = type(exc).__name__
                if started >= measure_from:
                    statuses[status] += 1
                    if status.startswith("2"):
                        latencies.append(loop.time() - started)

        warm = asyncio.gather(*(client() for _ in range(concurrency)))
        await asyncio.sleep(max(0.0, measure_from - loop.time()))
        cpu_before = time.process_time()
        await warm
        client_cpu = time.process_time() - cpu_before
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
    )
