"""Password hashing with Argon2id (argon2-cffi's defaults follow RFC 9106's recommendations).

A hash or a check costs about a fifth of a second of CPU, in four threads of Argon2's own. It
runs off the event loop, a few at a time, in threads of their own (argon2-cffi releases the GIL
in its C call) at a lower CPU priority: on the event loop, a burst of registrations stalled
every request and the consumer behind each hash."""

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")

NICENESS = 10
"""Added to the hashing threads' niceness (Argon2's own threads inherit it): when the cores are
short, the event loop gets them first."""


class PasswordsBusy(RuntimeError):
    """Every worker is busy and as many passwords wait already."""


class Passwords:
    """Hashes and checks passwords in a pool of ``workers`` threads. Up to ``waiting`` more wait
    their turn; beyond, :class:`PasswordsBusy` at once (a request that waited longer than its
    client would only be answered to no one, its account created all the same)."""

    def __init__(self, workers: int, waiting: int, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="argon2", initializer=_yield_to_the_loop
        )
        self._capacity = workers + waiting
        self._admitted = 0
        self._dummy_hash: str | None = None

    async def hash_password(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify_password(self, password_hash: str, password: str) -> bool:
        return await self._run(self._verify, password_hash, password)

    async def verify_no_one(self, password: str) -> None:
        """As slow as a real check, for an email no account has: no user enumeration."""
        if self._dummy_hash is None:  # made on first use, not at import
            self._dummy_hash = await self.hash_password("not a real password")
        await self.verify_password(self._dummy_hash, password)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        if self._admitted >= self._capacity:
            raise PasswordsBusy
        self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)
        finally:
            self._admitted -= 1


def _yield_to_the_loop() -> None:
    thread = threading.get_native_id()  # Linux: a thread's niceness is its own
    os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + NICENESS)
