"""What wraps every request: rate limit (with RateLimit headers), body size limit, metrics."""

import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.routing import Match
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


def _route_template(app: FastAPI, request: Request) -> str:
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(route, "path", request.url.path))
    return "unmatched"


def _client_key(request: Request, tokens: Tokens) -> str:
    """The token's user where the request carries a valid one, else the client's address."""
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        try:
            return f"user:{tokens.verify(header[7:], 'access').id}"
        except InvalidTokenError:
            pass
    return f"ip:{request.client.host if request.client else 'unknown'}"


def install(
    app: FastAPI, *, tokens: Tokens, limiter: RateLimiter, metrics: Metrics, max_body_bytes: int
) -> None:
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # inside guard: limited, counted

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await _guarded(request, call_next)
        metrics.observe(
            request.method,
            _route_template(app, request),
            response.status_code,
            time.perf_counter() - started,
        )
        return response

    async def _guarded(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path in UNLIMITED:
            return await call_next(request)
        verdict = limiter.hit(_client_key(request, tokens))
        headers = {
            "RateLimit-Limit": str(verdict.limit),
            "RateLimit-Remaining": str(verdict.remaining),
            "RateLimit-Reset": str(verdict.reset_s),
        }
        if not verdict.allowed:
            headers["Retry-After"] = str(verdict.retry_after_s)
            return JSONResponse({"detail": "too many requests"}, 429, headers=headers)
        response = await call_next(request)
        response.headers.update(headers)
        return response

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def prometheus() -> str:
        """Prometheus metrics of the gateway."""
        return metrics.render()
