"""Passwords are hashed and checked off the event loop, a bounded number at a time."""

import asyncio
import os
import threading
import time
from collections.abc import Awaitable

import pytest
from argon2 import PasswordHasher

from user_svc.passwords import NICENESS, Passwords, PasswordsBusy


async def worst_tick_delay(work: Awaitable[object], interval_s: float = 0.005) -> float:
    """Run ``work`` while a coroutine ticks every ``interval_s``; how much later than asked the
    latest tick came (what every other request and the consumer would wait)."""
    loop = asyncio.get_running_loop()
    running = asyncio.ensure_future(work)
    worst = 0.0
    while not running.done():
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        worst = max(worst, loop.time() - due)
    await running
    return worst


async def test_the_event_loop_stays_responsive_when_a_burst_of_passwords_is_hashed() -> None:
    passwords = Passwords(workers=2, waiting=100)
    started = time.perf_counter()
    one = await passwords.hash_password("warm up")
    one_hash_s = time.perf_counter() - started
    try:
        burst = asyncio.gather(
            *(passwords.hash_password(f"password {n}") for n in range(6)),
            *(passwords.verify_password(one, "wrong") for _ in range(2)),
        )
        worst = await worst_tick_delay(burst)
    finally:
        await passwords.close()
    # on the loop, each hash would delay the ticks by its whole length
    assert worst < one_hash_s / 2, (worst, one_hash_s)


class CountingHasher(PasswordHasher):
    """Takes its time like Argon2, without the CPU; counts how many run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.running = 0
        self.most_at_once = 0
        self.calls: list[str] = []
        self.niceness: set[int] = set()
        self.go_on = threading.Event()
        self.go_on.set()
        self._lock = threading.Lock()

    def _take_time(self, call: str) -> None:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.calls.append(call)
            self.niceness.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        self.go_on.wait()
        time.sleep(0.02)
        with self._lock:
            self.running -= 1

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._take_time("hash")
        return f"hashed:{password!s}"

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self._take_time("verify")
        return hash == f"hashed:{password!s}"


async def test_no_more_than_the_workers_hash_at_once_at_a_lower_priority() -> None:
    hasher = CountingHasher()
    passwords = Passwords(workers=3, waiting=100, hasher=hasher)
    try:
        await asyncio.gather(*(passwords.hash_password(str(n)) for n in range(12)))
    finally:
        await passwords.close()
    assert hasher.most_at_once == 3
    assert hasher.niceness == {os.getpriority(os.PRIO_PROCESS, 0) + NICENESS}


async def test_a_password_is_refused_at_once_when_as_many_wait_already() -> None:
    hasher = CountingHasher()
    hasher.go_on.clear()
    passwords = Passwords(workers=1, waiting=1, hasher=hasher)
    try:
        admitted = [asyncio.ensure_future(passwords.hash_password(str(n))) for n in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(PasswordsBusy):
            await passwords.hash_password("one too many")
        hasher.go_on.set()
        assert len(await asyncio.gather(*admitted)) == 2
        await passwords.hash_password("room again")
    finally:
        hasher.go_on.set()
        await passwords.close()


async def test_an_email_without_an_account_costs_a_real_check() -> None:
    hasher = CountingHasher()
    passwords = Passwords(workers=1, waiting=100, hasher=hasher)
    try:
        await passwords.verify_no_one("a guess")
        await passwords.verify_no_one("another guess")
    finally:
        await passwords.close()
    assert hasher.calls == ["hash", "verify", "verify"]  # the stand-in hash is made once


async def test_a_wrong_password_or_a_broken_hash_does_not_verify() -> None:
    passwords = Passwords(workers=1, waiting=100)
    try:
        stored = await passwords.hash_password("correct horse")
        assert await passwords.verify_password(stored, "correct horse")
        assert not await passwords.verify_password(stored, "wrong horse")
        assert not await passwords.verify_password("not a hash", "correct horse")
    finally:
        await passwords.close()
