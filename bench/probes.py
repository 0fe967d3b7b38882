"""What the bench reads off the running stack without going through it: CPU time and memory
of every process (from /proc), transaction counters (from PostgreSQL's statistics), and message
offsets (from Kafka's consumer groups)."""

import asyncio
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from common.db import libpq_url
from common.kafka_access import KafkaAccess
from schemas.topics import CONSUMING_SERVICES, DOMAIN_TOPICS
from stack import postgres, procs, services
from stack.config import StackConfig

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


# --- processes -----------------------------------------------------------------------------


def stack_roots(config: StackConfig) -> dict[str, int]:
    """The main pid of every process of the stack, by name: each Kafka node, postgres (the
    postmaster) and each service. Whatever they start (postgres backends) is found under them."""
    roots: dict[str, int] = {}
    for node in config.kafka_nodes:
        pid = procs.running_pid(config, node.name)
        if pid is not None:
            roots[node.name] = pid
    postmaster = _postmaster_pid(config)
    if postmaster is not None:
        roots["postgres"] = postmaster
    for service in services.known(config):  # each replica by its own name (order_svc#2)
        pid = procs.running_pid(config, service.name)
        if pid is not None:
            roots[service.name] = pid
    return roots


def _postmaster_pid(config: StackConfig) -> int | None:
    if config.external_database:
        return None
    try:
        pid = int((config.pg_dir / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if (PROC / str(pid)).exists() else None


@dataclass(frozen=True)
class _Proc:
    ppid: int
    cpu_ticks: int
    """utime + stime, plus cutime + cstime: the time of children that exited and were reaped
    (postgres backends that came and went) stays counted in their parent."""


def _read_proc(pid: int) -> _Proc | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 of proc(5) (state): ppid is 4, utime..cstime are 14..17
    return _Proc(ppid=int(fields[1]), cpu_ticks=sum(int(value) for value in fields[11:15]))


def _process_table() -> dict[int, _Proc]:
    table: dict[int, _Proc] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            proc = _read_proc(int(entry.name))
            if proc is not None:
                table[int(entry.name)] = proc
    return table


def _trees(table: Mapping[int, _Proc], roots: Mapping[str, int]) -> dict[str, list[int]]:
    children: dict[int, list[int]] = {}
    for pid, proc in table.items():
        children.setdefault(proc.ppid, []).append(pid)
    trees: dict[str, list[int]] = {}
    for name, root in roots.items():
        if root not in table:
            trees[name] = []
            continue
        found, pending = [], [root]
        while pending:
            pid = pending.pop()
            found.append(pid)
            pending.extend(children.get(pid, ()))
        trees[name] = found
    return trees


def cpu_seconds(roots: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process and everything under it."""
    table = _process_table()
    return {
        name: sum(table[pid].cpu_ticks for pid in pids) / CLOCK_TICKS
        for name, pids in _trees(table, roots).items()
    }


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 3) for name in after}


def _status_kb(pid: int, *keys: str) -> list[int]:
    """Fields of ``/proc/<pid>/status`` in kB, in the order asked (0 for one not there)."""
    found = dict.fromkeys(keys, 0)
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in found:
                found[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return list(found.values())


def _rss_kb(pids: Iterable[int]) -> int:
    return sum(_status_kb(pid, "VmRSS")[0] for pid in pids)


def _shared_once_kb(pids: Iterable[int]) -> int:
    """Resident memory of processes that map the same files and shared memory (PostgreSQL's
    backends: its binary and its shared buffers): each one's own anonymous pages, and the
    shared ones once (as many as the process that touched the most). Within 5% of the
    proportional set size, whose reading walks every page table of every backend (a fifth of
    the bench's own samples at 100 orders/s)."""
    own = files = shared = 0
    for pid in pids:
        anon, file, shmem = _status_kb(pid, "RssAnon", "RssFile", "RssShmem")
        own += anon
        files = max(files, file)
        shared = max(shared, shmem)
    return own + files + shared


@dataclass
class MemoryPeaks:
    rss_mb: dict[str, float] = field(default_factory=dict)
    """Largest resident set seen, summed over the process and its children. For postgres the
    shared memory every backend maps (the shared buffers) counts once."""
    hwm_mb: dict[str, float] = field(default_factory=dict)
    """The main process's own high-water mark (VmHWM), since it started."""


class MemorySampler:
    """Samples the memory of every process of the stack once a second, in a thread."""

    SHARED = frozenset({"postgres"})

    def __init__(self, roots: Mapping[str, int], interval_s: float = 1.0) -> None:
        self._roots = dict(roots)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self.peaks = MemoryPeaks()

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
        for name, pid in self._roots.items():
            self.peaks.hwm_mb[name] = round(_status_kb(pid, "VmHWM")[0] / 1024, 1)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()

    def sample(self) -> None:
        trees = _trees(_process_table(), self._roots)
        for name, pids in trees.items():
            mb = (_shared_once_kb(pids) if name in self.SHARED else _rss_kb(pids)) / 1024
            self.peaks.rss_mb[name] = round(max(self.peaks.rss_mb.get(name, 0.0), mb), 1)


# --- PostgreSQL ----------------------------------------------------------------------------


def server_url(config: StackConfig) -> str:
    """A libpq URL of the server that holds the services' databases, on its ``postgres``
    database (so the bench's own queries never count against a service)."""
    if not config.external_database:
        return postgres.url(config)
    return libpq_url(config.database_url, database="postgres")


@dataclass(frozen=True)
class PgCounters:
    commits: dict[str, int]
    rollbacks: dict[str, int]
    next_xid: int
    """The next transaction id: it advances once per transaction that wrote something."""

    def transactions(self) -> dict[str, int]:
        """Commits + rollbacks, per database."""
        return {db: count + self.rollbacks.get(db, 0) for db, count in self.commits.items()}


def pg_counters(url: str, databases: Iterable[str] = CONSUMING_SERVICES) -> PgCounters:
    """Commits and rollbacks of each service's database, and the server's next xid.

    Read-only sessions end in a ROLLBACK (SQLAlchemy closes them so), so both count as one
    transaction each. Backends publish their counters at most once a second (or after ten idle
    seconds), so a reading can trail the truth by that much."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT datname, xact_commit, xact_rollback FROM pg_stat_database"
            " WHERE datname = ANY(%s)",
            (list(databases),),
        ).fetchall()
        xid_row = conn.execute(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
        ).fetchone()
    assert xid_row is not None
    return PgCounters(
        commits={str(name): int(commits) for name, commits, _ in rows},
        rollbacks={str(name): int(rollbacks) for name, _, rollbacks in rows},
        next_xid=int(xid_row[0]),
    )


# --- Kafka ---------------------------------------------------------------------------------


class KafkaOffsets:
    """End offsets of the shop's topics and the offsets each service's group committed."""

    def __init__(self, access: KafkaAccess) -> None:
        options = access.client_options()
        self._admin = AIOKafkaAdminClient(**options, request_timeout_ms=10000)
        self._consumer = AIOKafkaConsumer(**options, group_id=None)
        self._lock = asyncio.Lock()  # one request at a time on the shared clients
        self._partitions = [
            TopicPartition(topic.name, partition)
            for topic in DOMAIN_TOPICS
            for partition in range(topic.partitions)
        ]

    async def __aenter__(self) -> "KafkaOffsets":
        await self._admin.start()
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def produced(self) -> dict[str, int]:
        """Messages written so far to each domain topic (the sum of its end offsets)."""
        async with self._lock:
            ends = await self._consumer.end_offsets(self._partitions)
        totals: dict[str, int] = {}
        for tp, offset in ends.items():
            totals[tp.topic] = totals.get(tp.topic, 0) + offset
        return totals

    async def consumed(self) -> dict[str, int]:
        """Messages each service's consumer group has committed so far, all topics together."""
        totals: dict[str, int] = {}
        async with self._lock:
            for group in CONSUMING_SERVICES:
                offsets = await self._admin.list_consumer_group_offsets(group)
                totals[group] = sum(max(meta.offset, 0) for meta in offsets.values())
        return totals

    async def lag(self) -> dict[str, int]:
        """Messages each service's group has not committed yet, on the topics it consumes."""
        lags: dict[str, int] = {}
        async with self._lock:
            ends = await self._consumer.end_offsets(self._partitions)
            for group in CONSUMING_SERVICES:
                offsets = await self._admin.list_consumer_group_offsets(group)
                lags[group] = sum(
                    max(ends.get(tp, meta.offset) - meta.offset, 0)
                    for tp, meta in offsets.items()
                    if meta.offset >= 0
                )
        return lags


def delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after}
