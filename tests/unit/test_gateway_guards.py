"""The gateway's guards without a stack: body limit, the 422 of any input, tokens, rate limit."""

import asyncio
import time
from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.types import Message

from common.http import invalid_request
from gateway_svc.api.accounts import LoginThrottle
from gateway_svc.api.fields import Text
from gateway_svc.app import create_app
from gateway_svc.auth import InvalidTokenError, Tokens
from gateway_svc.middleware import (
    BodyLimit,
    Guard,
    Metrics,
    Shed,
    client_address,
    install,
    release_slot,
)
from gateway_svc.ratelimit import RateLimiter
from gateway_svc.settings import Settings
from gateway_svc.watch import News, Watchers, news_or_leaving

LIMIT = 1000


class Named(BaseModel):
    name: Text


def _app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodyLimit, max_bytes=LIMIT, timeout_s=2)
    app.state.calls = 0

    @app.post("/echo")
    async def echo(body: Named) -> Named:
        return body

    @app.post("/touch")
    async def touch() -> dict[str, int]:
        app.state.calls += 1
        return {"calls": app.state.calls}

    @app.exception_handler(RequestValidationError)
    async def unprocessable(_: object, exc: RequestValidationError) -> object:
        return invalid_request(exc)

    return app


async def _chunks(body: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _post(app: FastAPI, path: str, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.post(path, **kwargs)  # type: ignore[arg-type]


async def test_a_body_over_the_limit_is_413_by_its_content_length() -> None:
    response = await _post(_app(), "/echo", content=b" " * (LIMIT + 1))
    assert response.status_code == 413


async def test_a_streamed_body_over_the_limit_is_413_and_the_route_never_runs() -> None:
    app = _app()
    response = await _post(app, "/touch", content=_chunks(b" " * (LIMIT + 1)))
    assert response.status_code == 413
    assert app.state.calls == 0


async def test_a_streamed_body_within_the_limit_reaches_the_route_whole() -> None:
    body = b'{"name": "' + b"n" * (LIMIT - 13) + b'"}'
    response = await _post(
        _app(), "/echo", content=_chunks(body), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "n" * (LIMIT - 13)


@pytest.mark.parametrize("text", [b"\\ud800", b"a\\u0000b"], ids=["lone surrogate", "NUL"])
async def test_text_no_service_can_store_is_a_422_naming_the_field(text: bytes) -> None:
    response = await _post(
        _app(),
        "/echo",
        content=b'{"name": "' + text + b'"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "name"] and "input" not in error


def test_a_refresh_token_names_its_sign_in_and_a_refresh_continues_it() -> None:
    tokens = Tokens(Settings(jwt_secret="a secret for this test only, long enough"))
    user = uuid4()
    first = tokens.refresh_grant(tokens.issue(user, "Customer").refresh_token)
    second = tokens.refresh_grant(tokens.issue(user, "Customer", family=first.family).refresh_token)
    assert first.user_id == second.user_id == user
    assert first.family == second.family and first.jti != second.jti
    other = tokens.refresh_grant(tokens.issue(user, "Customer").refresh_token)
    assert other.family != first.family


def test_an_access_token_is_no_refresh_grant_and_the_reverse() -> None:
    tokens = Tokens(Settings(jwt_secret="a secret for this test only, long enough"))
    pair = tokens.issue(uuid4(), "Customer")
    with pytest.raises(InvalidTokenError):
        tokens.refresh_grant(pair.access_token)
    with pytest.raises(InvalidTokenError):
        tokens.verify(pair.refresh_token, "access")


def test_a_verified_access_token_is_remembered_only_until_it_expires() -> None:
    settings = Settings(jwt_secret="a secret for this test only, long enough")
    tokens = Tokens(settings.model_copy(update={"access_token_ttl_s": 1}))
    user = uuid4()
    access = tokens.issue(user, "Customer").access_token
    assert tokens.verify(access, "access").id == user
    assert tokens.verify(access, "access").id == user  # the second time from memory
    time.sleep(2)
    with pytest.raises(InvalidTokenError):
        tokens.verify(access, "access")


def test_the_burst_is_configurable_and_then_the_pace_applies() -> None:
    limiter = RateLimiter(per_minute=60, burst=3)
    verdicts = [limiter.hit("client") for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[0].limit == 3 and verdicts[-1].retry_after_s == 1
    assert RateLimiter(per_minute=600).hit("client").limit == 60


def test_the_gateway_reads_its_burst_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_BURST", "7")
    assert Settings().rate_limit_burst == 7
    monkeypatch.delenv("RATE_LIMIT_BURST")
    assert Settings().rate_limit_burst is None


async def test_the_guard_limits_counts_by_route_template_and_says_how_much_is_left() -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    metrics = Metrics()
    tokens = Tokens(Settings(jwt_secret="a secret for this test only, long enough"))
    app.add_middleware(
        Guard,
        tokens=tokens,
        limiter=RateLimiter(per_minute=60, burst=2),
        metrics=metrics,
        routes=app.router.routes,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answers = [await client.get(f"/items/{n}") for n in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert answers[-1].headers["Retry-After"] == "1"
    assert metrics.answered("GET", "/items/{item_id}", 200) == 2
    assert metrics.answered("GET", "/items/{item_id}", 429) == 1


async def test_the_guard_answers_503_at_once_beyond_its_requests_in_flight_and_not_after() -> None:
    app = FastAPI()
    release, both_in = asyncio.Event(), asyncio.Event()
    entered = 0

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        nonlocal entered
        entered += 1
        if entered == 2:
            both_in.set()
        await release.wait()
        return {"done": True}

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"alive": True}

    metrics = Metrics()
    install(
        app,
        tokens=Tokens(Settings(jwt_secret="a secret for this test only, long enough")),
        limiter=RateLimiter(per_minute=6000),
        metrics=metrics,
        max_body_bytes=LIMIT,
        body_read_timeout_s=2,
        max_in_flight=2,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        held = [asyncio.create_task(client.get("/slow")) for _ in range(2)]
        await asyncio.wait_for(both_in.wait(), 5)
        busy = await asyncio.wait_for(client.get("/slow"), 5)  # answered, not held
        health = await client.get("/healthz")
        release.set()
        answers = await asyncio.gather(*held)
        after = await client.get("/slow")
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert busy.json() == {"detail": "the gateway is busy; try again shortly"}
    assert health.status_code == 200  # probes are never shed
    assert [a.status_code for a in answers] == [200, 200] and after.status_code == 200
    assert entered == 3
    assert metrics.answered("GET", "/slow", 503) == 1


def test_the_gateway_bounds_its_requests_in_flight_as_its_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_IN_FLIGHT", "3")
    app = create_app(Settings(jwt_secret="a secret for this test only, long enough"))
    layer = app.build_middleware_stack()
    while not isinstance(layer, Shed):
        layer = layer.app  # type: ignore[attr-defined]
    assert layer.max_in_flight == 3


async def test_a_body_that_stalls_is_408_and_holds_no_slot_while_it_is_awaited() -> None:
    app = FastAPI()

    @app.post("/touch")
    async def touch() -> dict[str, bool]:
        return {"touched": True}

    install(
        app,
        tokens=Tokens(Settings(jwt_secret="a secret for this test only, long enough")),
        limiter=RateLimiter(per_minute=6000),
        metrics=Metrics(),
        max_body_bytes=LIMIT,
        body_read_timeout_s=0.5,
        max_in_flight=1,
    )
    stall = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield b"{"
        await stall.wait()

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        held = asyncio.create_task(client.post("/touch", content=stalled()))
        await asyncio.sleep(0.1)
        meanwhile = await asyncio.wait_for(client.post("/touch", content=b"{}"), 1)
        refused = await asyncio.wait_for(held, 5)
        stall.set()
    assert meanwhile.status_code == 200  # the stalled body held no slot of the one there is
    assert refused.status_code == 408 and refused.headers["Connection"] == "close"


async def test_a_route_that_gives_its_slot_back_lets_another_request_in() -> None:
    app = FastAPI()
    parked, release = asyncio.Event(), asyncio.Event()

    @app.get("/park")
    async def park(request: Request) -> dict[str, bool]:
        release_slot(request.scope)
        release_slot(request.scope)  # once only, however often it is called
        parked.set()
        await release.wait()
        return {"parked": True}

    @app.get("/work")
    async def work() -> dict[str, bool]:
        return {"worked": True}

    app.add_middleware(Shed, max_in_flight=1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        held = asyncio.create_task(client.get("/park"))
        await asyncio.wait_for(parked.wait(), 5)
        answers = [await client.get("/work") for _ in range(2)]
        release.set()
        assert (await held).status_code == 200
    assert [a.status_code for a in answers] == [200, 200]


def test_long_polls_and_streams_are_bounded_per_user_per_address_and_in_all() -> None:
    watchers = Watchers(total=4, per_user=2, per_address=3)
    ann = [watchers.take("ann", "10.0.0.1") for _ in range(2)]
    with pytest.raises(HTTPException) as per_user:
        watchers.take("ann", "10.0.0.2")
    bob = watchers.take("bob", "10.0.0.1")
    with pytest.raises(HTTPException) as per_address:
        watchers.take("cy", "10.0.0.1")  # a third account, the same client
    dan = watchers.take("dan", "10.0.0.2")
    with pytest.raises(HTTPException) as in_all:
        watchers.take("eve", "10.0.0.3")
    assert [e.value.status_code for e in (per_user, per_address, in_all)] == [429, 429, 503]
    assert watchers.try_take("eve", "10.0.0.3") is None
    ann[0].release()
    ann[0].release()  # once only
    with watchers.take("eve", "10.0.0.3"):
        assert watchers.count == 4
    for place in (bob, dan, ann[1]):
        place.release()
    assert watchers.count == 0 and not watchers.open


async def test_a_waiter_whose_client_leaves_is_released_at_once() -> None:
    left = asyncio.Event()

    async def receive() -> dict[str, object]:
        await left.wait()
        return {"type": "http.disconnect"}

    waiting = asyncio.create_task(news_or_leaving(News(), receive, timeout_s=30))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    left.set()
    assert await asyncio.wait_for(waiting, 1) is False


async def test_a_waiter_is_told_the_orders_news() -> None:
    news = News()

    async def receive() -> dict[str, object]:
        await asyncio.Event().wait()  # the client stays
        return {}

    waiting = asyncio.create_task(news_or_leaving(news, receive, timeout_s=30))
    await asyncio.sleep(0.05)
    news.tell("OrderPaid")
    assert await asyncio.wait_for(waiting, 1) is True and news.last == "OrderPaid"
    assert await news_or_leaving(News(), receive, timeout_s=0.05) is False  # the time is up


async def test_a_client_that_does_not_read_its_answer_holds_no_slot() -> None:
    app = FastAPI()

    @app.get("/page")
    async def page() -> dict[str, str]:
        return {"page": "x" * 1000}

    shed = Shed(app, max_in_flight=1)
    stuck = asyncio.Event()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def never_drains(message: Message) -> None:
        if message["type"] == "http.response.body":
            await stuck.wait()  # the socket's buffers are full: the send never completes

    async def reads(message: Message) -> None:
        answers.append(message)

    answers: list[Message] = []
    scope = {"type": "http", "method": "GET", "path": "/page", "headers": [], "query_string": b""}
    held = asyncio.create_task(shed(dict(scope), receive, never_drains))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(shed(dict(scope), receive, reads), 1)
    assert answers[0]["status"] == 200 and shed.in_flight == 0
    stuck.set()
    await held


def test_an_owners_own_address_is_past_the_ceiling_that_guesses_from_elsewhere_reach() -> None:
    throttle = LoginThrottle(per_minute=2)  # ceiling per email: 20
    throttle.attempt("ann@example.com", "10.0.0.1")
    throttle.signed_in("Ann@example.com", "10.0.0.1")
    for n in range(20):  # ten addresses spend the email's ceiling
        throttle.attempt("ann@example.com", f"10.9.9.{n // 2}")
    with pytest.raises(HTTPException) as elsewhere:
        throttle.attempt("ann@example.com", "10.0.0.2")
    throttle.attempt("ann@example.com", "10.0.0.1")  # where she signed in before
    assert elsewhere.value.status_code == 429


def test_a_client_address_is_an_address_or_one_bucket_for_all_that_are_not() -> None:
    def of(host: str) -> str:
        return client_address({"type": "http", "client": (host, 1234)})

    assert of("203.0.113.7") == "203.0.113.7" and of("::1") == "::1"
    assert of("not-an-ip") == of("a, 127.0.0.1") == "invalid"
    assert client_address({"type": "http"}) == "unknown"
