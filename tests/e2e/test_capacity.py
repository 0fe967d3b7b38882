"""No one client holds the gateway's capacity: stalled bodies and long polls wait outside the
requests the gateway works on (MAX_IN_FLIGHT), each bounded on its own."""

import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit

import httpx

from tests.e2e.conftest import Shop, gateway_beside

IN_FLIGHT = "4"


@contextmanager
def _stalled_login(base: str) -> Iterator[socket.socket]:
    """A chunked POST /auth/login whose headers and first chunk arrive, then nothing."""
    url = urlsplit(base)
    conn = socket.create_connection((url.hostname, url.port), timeout=30)
    try:
        conn.sendall(
            b"POST /auth/login HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"
        )
        yield conn
    finally:
        conn.close()


def _answer_of(conn: socket.socket) -> bytes:
    """What the gateway sent on ``conn`` until it closed it."""
    received = b""
    while chunk := conn.recv(4096):
        received += chunk
    return received


def test_stalled_bodies_beyond_the_in_flight_bound_leave_room_for_everyone_else(
    shop: Shop,
) -> None:
    settings = {"MAX_IN_FLIGHT": IN_FLIGHT, "BODY_READ_TIMEOUT_S": "3"}
    with gateway_beside(shop, **settings) as gateway, ExitStack() as stalls:
        stalled = [stalls.enter_context(_stalled_login(gateway)) for _ in range(12)]
        time.sleep(0.5)  # every stalled request is in the gateway by now
        started = time.monotonic()
        visitor = httpx.get(f"{gateway}/categories", timeout=5)
        assert visitor.status_code == 200, visitor.text
        assert time.monotonic() - started < 1
        answer = _answer_of(stalled[0])  # the deadline passes: 408, and the connection closes
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_long_polls_on_orders_that_do_not_exist_answer_404_at_once_and_hold_nothing(
    shop: Shop,
) -> None:
    customer = shop.customer()
    with gateway_beside(shop, MAX_IN_FLIGHT=IN_FLIGHT) as gateway:

        def poll(_: int) -> int:
            return httpx.get(
                f"{gateway}/orders/{uuid.uuid4()}",
                params={"wait": 30},
                headers=customer.headers,
                timeout=40,
            ).status_code

        assert httpx.get(f"{gateway}/categories").status_code == 200  # connections warmed up
        with ThreadPoolExecutor(int(IN_FLIGHT)) as pool:
            polls = [pool.submit(poll, n) for n in range(int(IN_FLIGHT))]
            wait(polls, timeout=5)  # on the old code, each of them still holds a slot
            started = time.monotonic()
            visitor = httpx.get(f"{gateway}/categories", timeout=5)
            took = time.monotonic() - started
            answers = [p.result() for p in polls]
    assert visitor.status_code == 200 and took < 1, (visitor.status_code, took)
    assert answers == [404] * int(IN_FLIGHT)
