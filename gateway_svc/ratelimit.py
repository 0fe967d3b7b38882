"""Per-client rate limits: a token bucket per key, in this process's memory.

Each gateway replica limits on its own; behind a load balancer the shop-wide limit is the sum.
"""

import math
import time
from dataclasses import dataclass

from fastapi import HTTPException


@dataclass
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int
    reset_s: int

    def refusal(self, detail: str) -> HTTPException:
        """The 429 a route raises when this verdict does not allow it."""
        return HTTPException(429, detail, headers={"Retry-After": str(self.retry_after_s)})


class RateLimiter:
    def __init__(self, per_minute: int, burst: int | None = None, max_keys: int = 100_000) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._burst = float(burst if burst is not None else max(1, per_minute // 10))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._max_keys = max_keys

    def peek(self, key: str) -> Verdict:
        """Would one more hit pass? Consumes nothing."""
        return self.hit(key, cost=1.0, consume=False)

    def hit(self, key: str, cost: float = 1.0, *, consume: bool = True) -> Verdict:
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        allowed = tokens >= cost
        if allowed and consume:
            tokens -= cost
        if consume:
            if len(self._buckets) >= self._max_keys and key not in self._buckets:
                self._prune(now)
            self._buckets[key] = (tokens, now)
        missing = max(0.0, cost - tokens)
        return Verdict(
            allowed=allowed,
            limit=int(self._burst),
            remaining=int(tokens),
            retry_after_s=0 if allowed else max(1, math.ceil(missing / self._rate)),
            reset_s=math.ceil((self._burst - tokens) / self._rate),
        )

    def give_back(self, key: str, cost: float = 1.0) -> None:
        """Return what a hit took, for an attempt that turned out not to count."""
        if key in self._buckets:
            tokens, last = self._buckets[key]
            self._buckets[key] = (min(self._burst, tokens + cost), last)

    def _prune(self, now: float) -> None:
        """Forget the buckets that have refilled; they hold no state worth keeping."""
        full_after = self._burst / self._rate
        self._buckets = {
            key: value for key, value in self._buckets.items() if now - value[1] < full_after
        }
