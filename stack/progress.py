"""Progress lines for the launcher: what it is doing and how long it has been at it."""

import sys
import time

_started = time.monotonic()


def step(component: str, what: str) -> None:
    print(
        f"[{time.monotonic() - _started:6.1f}s] {component:<17} {what}", file=sys.stderr, flush=True
    )


def elapsed() -> float:
    return time.monotonic() - _started
