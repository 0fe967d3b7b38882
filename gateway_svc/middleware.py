"""What wraps every request: load shedding, rate limit (with RateLimit headers), body size
limit, metrics."""

import time
from collections import Counter, defaultdict
from collections.abc import Sequence

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway_svc.auth import InvalidTokenError, Tokens
from gateway_svc.ratelimit import RateLimiter

UNLIMITED = {"/healthz", "/readyz", "/metrics"}


class Metrics:
    """Prometheus counters of requests by route template and status, and their time."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        self.seconds[(method, route)] += seconds

    def render(self) -> str:
        lines = [
            "# HELP shop_http_requests_total Requests answered, by route and status.",
            "# TYPE shop_http_requests_total counter",
        ]
        for (method, route, status), count in sorted(self.requests.items()):
            labels = f'method="{method}",route="{route}",status="{status}"'
            lines.append(f"shop_http_requests_total{{{labels}}} {count}")
        lines += [
            "# HELP shop_http_request_seconds_total Time spent answering, by route.",
            "# TYPE shop_http_request_seconds_total counter",
        ]
        for (method, route), seconds in sorted(self.seconds.items()):
            labels = f'method="{method}",route="{route}"'
            lines.append(f"shop_http_request_seconds_total{{{labels}}} {seconds:.6f}")
        return "\n".join(lines) + "\n"


class BodyLimit:
    """Refuses a request body over ``max_bytes`` with 413 before any route sees it.

    A declared Content-Length over the limit is refused without reading a byte. A body without
    one (chunked) is read here, counting bytes as they stream in, and refused as soon as it
    passes the limit; one within it is handed on whole. Either way at most ``max_bytes`` are
    held per request."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)  # the client left
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": f"body over {self.max_bytes} bytes"}, 413)
        await response(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that gives ``messages`` first, then what the client sends next."""

    async def replayed() -> Message:
        return messages.pop(0) if messages else await receive()

    return replayed


class Guard:
    """Load shedding (503 with ``Retry-After`` beyond ``max_in_flight`` requests at once), rate
    limit (429 with ``Retry-After``; ``RateLimit-*`` headers on every answer) and metrics, as
    plain ASGI: no task or stream per request.

    An overloaded gateway answers at once rather than queueing: each request held costs memory
    and makes every other one later."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: Tokens,
        limiter: RateLimiter,
        metrics: Metrics,
        max_in_flight: int,
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.app = app
        self.routes = routes
        self.tokens = tokens
        self.limiter = limiter
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.in_flight = 0

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
                return
            if self.in_flight >= self.max_in_flight:
                headers.append((b"retry-after", b"1"))
                busy = JSONResponse({"detail": "the gateway is busy; try again shortly"}, 503)
                await busy(scope, receive, answer)
                return
            self.in_flight += 1
            try:
                await self._limited(scope, receive, answer, headers)
            finally:
                self.in_flight -= 1
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
        client = scope.get("client")
        return f"ip:{client[0] if client else 'unknown'}"


def install(
    app: FastAPI,
    *,
    tokens: Tokens,
    limiter: RateLimiter,
    metrics: Metrics,
    max_body_bytes: int,
    max_in_flight: int,
) -> None:
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # inside the guard: limited, counted
    app.add_middleware(
        Guard,
        tokens=tokens,
        limiter=limiter,
        metrics=metrics,
        max_in_flight=max_in_flight,
        routes=app.router.routes,
    )
