"""What wraps every request: rate limit (with RateLimit headers) and metrics, the body read
within a size and a time, load shedding."""

import asyncio
import ipaddress
import time
from collections.abc import Sequence

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.metrics import SECONDS
from gateway_svc.auth import InvalidTokenError, Tokens
from gateway_svc.ratelimit import RateLimiter

UNLIMITED = {"/healthz", "/readyz", "/metrics"}


class Metrics:
    """Requests by route template and status, and their time, in the service's registry (a new
    one of its own if none is given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._requests = Counter(
            "shop_http_requests",
            "Requests answered, by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._seconds = Counter(
            "shop_http_request_seconds",
            "Time spent answering, by route.",
            ["method", "route"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "shop_http_request_duration_seconds",
            "Time to answer a request, by route and status.",
            ["method", "route", "status"],
            buckets=SECONDS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method, route, str(status)).inc()
        self._seconds.labels(method, route).inc(seconds)
        self._duration.labels(method, route, str(status)).observe(seconds)

    def answered(self, method: str, route: str, status: int) -> float:
        """Requests answered so far on ``route`` with ``status``."""
        labels = {"method": method, "route": route, "status": str(status)}
        return self.registry.get_sample_value("shop_http_requests_total", labels) or 0.0


class BodyLimit:
    """Reads a request's body before any route sees it, within a size and a time.

    A declared Content-Length over ``max_bytes`` is refused (413) without reading a byte. A body
    without one (chunked) is counted as it streams in and refused as soon as it passes the
    limit. A body not read whole within ``timeout_s`` is refused (408) and its connection
    closed: a client that stalls mid-body holds nothing but its own connection. Either way at
    most ``max_bytes`` are held per request."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _refuse(scope, send, 413, f"body over {self.max_bytes} bytes")
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                first = await self._read(receive)
        except TimeoutError:
            await _refuse(scope, send, 408, f"body not received within {self.timeout_s:g} s")
            return
        if first is None:
            await _refuse(scope, send, 413, f"body over {self.max_bytes} bytes")
            return
        await self.app(scope, _replay([first], receive), send)

    async def _read(self, receive: Receive) -> Message | None:
        """The whole body as one message (or the client's leaving); None past the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message  # the client left
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}


async def _refuse(scope: Scope, send: Send, status: int, detail: str) -> None:
    """Answer without reading further, and close the connection: what is left of the body is
    never read."""
    response = JSONResponse({"detail": detail}, status, headers={"Connection": "close"})
    await response(scope, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that gives ``messages`` first, then what the client sends next."""

    async def replayed() -> Message:
        return messages.pop(0) if messages else await receive()

    return replayed


def client_address(scope: Scope) -> str:
    """The client's address: the connection's, or X-Forwarded-For's from a trusted proxy (as
    uvicorn's proxy headers set it). What is no address at all is one client, "invalid": a
    forged header cannot make a fresh budget of every string."""
    client = scope.get("client")
    if not client:
        return "unknown"
    try:
        return str(ipaddress.ip_address(client[0]))
    except ValueError:
        return "invalid"


SLOT = "shop.in_flight_slot"
"""The scope key of a request's :class:`Slot`."""


class Slot:
    """A request's place among those the gateway works on; released once."""

    def __init__(self, shed: "Shed") -> None:
        self._shed: Shed | None = shed
        shed.in_flight += 1

    def release(self) -> None:
        if self._shed is not None:
            self._shed.in_flight -= 1
            self._shed = None


def release_slot(scope: Scope) -> None:
    """Give back the request's in-flight slot: for a route about to wait on something else
    than the gateway's work (a long poll, a stream), bounded by its own limits instead."""
    slot: Slot | None = scope.get(SLOT)
    if slot is not None:
        slot.release()


class Shed:
    """Load shedding: at most ``max_in_flight`` requests worked on at once; one more is
    answered 503 with ``Retry-After`` at once rather than queued (each request held costs
    memory and makes every other one later). A request counts from its body's last byte (see
    :class:`BodyLimit`, outside this) until its answer starts or it gives its slot back: a
    client that stalls sending its body, or reading its answer, holds none."""

    def __init__(self, app: ASGIApp, max_in_flight: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            busy = JSONResponse(
                {"detail": "the gateway is busy; try again shortly"},
                503,
                headers={"Retry-After": "1"},
            )
            await busy(scope, receive, send)
            return
        slot = scope[SLOT] = Slot(self)

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                slot.release()  # the work is done; a client slow to read its answer holds none
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            slot.release()


class Guard:
    """Rate limit (429 with ``Retry-After``; ``RateLimit-*`` headers on every answer) and
    metrics, as plain ASGI: no task or stream per request. Outermost, so that it counts every
    answer, the 408, 413 and 503 of the guards inside it too."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: Tokens,
        limiter: RateLimiter,
        metrics: Metrics,
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.app = app
        self.routes = routes
        self.tokens = tokens
        self.limiter = limiter
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        headers: list[tuple[bytes, bytes]] = []

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        try:
            if scope["path"] in UNLIMITED:
                await self.app(scope, receive, answer)
            else:
                await self._limited(scope, receive, answer, headers)
        finally:
            self.metrics.observe(
                scope["method"], self._template(scope), status, time.perf_counter() - started
            )

    async def _limited(
        self, scope: Scope, receive: Receive, answer: Send, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """The rate limit, then the app."""
        verdict = self.limiter.hit(self._client_key(scope))
        headers += [
            (b"ratelimit-limit", str(verdict.limit).encode()),
            (b"ratelimit-remaining", str(verdict.remaining).encode()),
            (b"ratelimit-reset", str(verdict.reset_s).encode()),
        ]
        if verdict.allowed:
            await self.app(scope, receive, answer)
            return
        headers.append((b"retry-after", str(verdict.retry_after_s).encode()))
        refused = JSONResponse({"detail": "too many requests"}, 429)
        await refused(scope, receive, answer)

    def _template(self, scope: Scope) -> str:
        """The route's path template: set by the router on a match, else (a refused request
        never reached it) found here."""
        route = scope.get("route") or next(
            (r for r in self.routes if r.matches(scope)[0] is Match.FULL), None
        )
        return str(getattr(route, "path", "unmatched"))

    def _client_key(self, scope: Scope) -> str:
        """The token's user where the request carries a valid one, else the client's address."""
        header = Headers(scope=scope).get("authorization", "")
        if header[:7].lower() == "bearer ":
            try:
                return f"user:{self.tokens.verify(header[7:], 'access').id}"
            except InvalidTokenError:
                pass
        return f"ip:{client_address(scope)}"


def install(
    app: FastAPI,
    *,
    tokens: Tokens,
    limiter: RateLimiter,
    metrics: Metrics,
    max_body_bytes: int,
    body_read_timeout_s: float,
    max_in_flight: int,
) -> None:
    """From the outside in: :class:`Guard` (rate limit, metrics), :class:`BodyLimit` (the body
    read whole, within a size and a time), :class:`Shed` (requests worked on at once)."""
    app.add_middleware(Shed, max_in_flight=max_in_flight)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, timeout_s=body_read_timeout_s)
    app.add_middleware(
        Guard, tokens=tokens, limiter=limiter, metrics=metrics, routes=app.router.routes
    )
