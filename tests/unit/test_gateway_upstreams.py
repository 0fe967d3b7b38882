"""The gateway's relay of a service's page, against a real HTTP server standing in for the
service: the body passed on as it came, or a 503 when it is not the page its route promises."""

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from fastapi import HTTPException

from gateway_svc.clients import Upstreams
from gateway_svc.settings import Settings
from tests.conftest import http_server

PAGE = b'{"items":[{"id":"7","name":"Tea \xc3\xa9","price":"9.99"}],"next_cursor":null}'


@pytest.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    answers = {
        "/page": web.Response(body=PAGE, content_type="application/json"),
        "/html": web.Response(text="<html>proxy error</html>", content_type="text/html"),
        "/missing": web.json_response({"detail": "no such user"}, status=404),
    }

    async def answer(request: web.Request) -> web.Response:
        return answers[request.path]

    async with http_server(answer) as url:
        clients = Upstreams(Settings(jwt_secret="unused", user_svc_url=url))
        yield clients
        await clients.close()


async def test_a_page_is_relayed_byte_for_byte_as_json(upstreams: Upstreams) -> None:
    response = await upstreams.relay("user", "/page", {"limit": 1, "cursor": None})

    assert response.status_code == 200
    assert response.body == PAGE
    assert response.media_type == "application/json"


async def test_a_body_that_is_no_json_object_is_a_503_not_passed_on(upstreams: Upstreams) -> None:
    with pytest.raises(HTTPException) as refused:
        await upstreams.relay("user", "/html")

    assert refused.value.status_code == 503
    assert refused.value.headers == {"Retry-After": "1"}


async def test_a_client_error_of_the_service_is_passed_on_with_its_detail(
    upstreams: Upstreams,
) -> None:
    with pytest.raises(HTTPException) as missing:
        await upstreams.relay("user", "/missing")

    assert (missing.value.status_code, missing.value.detail) == (404, "no such user")
