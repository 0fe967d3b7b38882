"""An order's trace, as an operator finds it in Zipkin: ``SHOP_TRACING=1`` brings up the stack
with a Zipkin beside it, and one paid order is one trace with spans of every service on its
path, joined through the Kafka hops."""

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from common.outbox import RELAY_LOCK
from tests.e2e.conftest import (
    Client,
    Shop,
    eventually,
    launcher,
    new_product,
    order_body,
    stack_up,
)

pytestmark = pytest.mark.e2e

ZIPKIN_PORT = int(os.environ.get("SHOP_E2E_TRACE_ZIPKIN_PORT", 29411))
FORGED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
HOPS = {"placeorder", "orderplaced", "stockreserved", "paymentsucceeded"}
"""The run spans of a paid order's hops (a span is named after its message's type)."""
ON_THE_PATH = {"gateway_svc", "order_svc", "product_svc", "payment_svc", "notification_svc"}


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    with stack_up(
        tmp_path_factory.mktemp("traced"),
        kafka_port=int(os.environ.get("SHOP_E2E_TRACE_KAFKA_PORT", 29292)),
        pg_port=int(os.environ.get("SHOP_E2E_TRACE_PG_PORT", 25535)),
        offset=int(os.environ.get("SHOP_E2E_TRACE_HTTP_PORT_OFFSET", 300)),
        SHOP_TRACING="1",
        SHOP_ZIPKIN_PORT=str(ZIPKIN_PORT),
        OTEL_BSP_SCHEDULE_DELAY="500",
    ) as shop:
        yield shop


def zipkin(path: str, **params: Any) -> Any:
    answer = httpx.get(f"http://127.0.0.1:{ZIPKIN_PORT}{path}", params=params, timeout=10)
    answer.raise_for_status()
    return answer.json()


@dataclass
class Unfinished:
    """A trace not yet whole: falsy, and a failure's message says what it lacked."""

    traces: int
    services: set[str]
    hops: set[str]

    def __bool__(self) -> bool:
        return False


def the_trace(order_id: str, hops: set[str]) -> list[dict[str, Any]] | Unfinished:
    """The one trace that holds the order's spans, once it has a span of every service on the
    path and a consumer span of each of ``hops`` (each service exports on its own schedule)."""
    found = traces_of(order_id)
    every = [span for trace in found for span in trace]
    services = {span["localEndpoint"]["serviceName"] for span in every}
    if len(found) == 1 and services >= ON_THE_PATH and hops <= consumed(every):
        spans: list[dict[str, Any]] = found[0]
        return spans
    return Unfinished(len(found), ON_THE_PATH - services, hops - consumed(every))


def traces_of(order_id: str) -> list[list[dict[str, Any]]]:
    """The traces in Zipkin with a span that applied a record keyed by the order's id."""
    found: list[list[dict[str, Any]]] = zipkin(
        "/api/v2/traces",
        annotationQuery=f"messaging.kafka.message.key={order_id}",
        lookback=600_000,
        endTs=int(time.time() * 1000) + 1000,
        limit=10,
    )
    return found


def consumed(spans: list[dict[str, Any]]) -> set[str]:
    return {span["name"].lower() for span in spans if span.get("kind") == "CONSUMER"}


def place_order(shop: Shop) -> tuple[Client, str]:
    admin, customer = shop.admin(), shop.customer("Trace")
    product = new_product(admin, price="12.50", stock=5)
    placed = customer.post(
        "/orders",
        json=order_body(customer, product),
        headers={"traceparent": FORGED},  # a client's context: ignored at the edge
    )
    assert placed.status_code == 202, placed.text
    return customer, placed.json()["id"]


def test_a_paid_order_is_one_trace_with_spans_of_every_service_on_its_path(traced: Shop) -> None:
    customer, order_id = place_order(traced)
    paid = customer.get(f"/orders/{order_id}", params={"wait": 20}).json()
    assert paid["status"] == "Paid", paid

    spans = eventually(lambda: the_trace(order_id, HOPS), timeout_s=90)
    by_id = {span["id"]: span for span in spans}
    assert spans[0]["traceId"] != FORGED.split("-")[1]
    roots = [span for span in spans if "parentId" not in span]
    assert len(roots) == 1 and roots[0]["localEndpoint"]["serviceName"] == "gateway_svc"
    # each hop's span is a child of a span of the service that sent it, up to the request
    hops = [span for span in spans if span.get("kind") == "CONSUMER" and "parentId" in span]
    assert {span["name"].lower() for span in hops} >= HOPS
    for hop in hops:
        parent = by_id.get(hop["parentId"])
        assert parent is not None, f"{hop['name']}'s parent is not in the trace"
    statements = [span for span in spans if span.get("tags", {}).get("db.system") == "postgresql"]
    assert statements, "no database statement in the trace"


def test_a_trace_goes_on_past_a_service_killed_between_its_commit_and_its_relay(
    traced: Shop,
) -> None:
    """order_svc commits an order and its OrderPlaced while the test holds its outbox's relay
    lock (as another relay would), and is killed with the message still in its outbox; the next
    process's relay sends it on the trace it was staged in."""
    with psycopg.connect(traced.pg_url("order_svc"), autocommit=True) as held:
        held.execute("SELECT pg_advisory_lock(%s)", (RELAY_LOCK,))
        customer, order_id = place_order(traced)

        def staged() -> bool:
            row = held.execute(
                "SELECT count(*) FROM outbox WHERE key = %s", (order_id.encode(),)
            ).fetchone()
            return row is not None and row[0] > 0

        eventually(staged, timeout_s=30)

        def staging_span() -> dict[str, Any] | None:
            found = zipkin(
                "/api/v2/traces",
                serviceName="order_svc",
                spanName="placeorder",
                annotationQuery=f"messaging.kafka.message.key={order_id}",
                lookback=600_000,
                endTs=int(time.time() * 1000) + 1000,
            )
            return next(
                (span for trace in found for span in trace if span["name"] == "placeorder"), None
            )

        # the span that staged it reached Zipkin before the process died
        placing = eventually(staging_span, timeout_s=30)
        killed = launcher(traced.env, "stop", "order_svc", "--kill")
        assert killed.returncode == 0, killed.stderr
    # started again from a shell without SHOP_TRACING: traced all the same, as the stack's
    # Zipkin runs
    untraced_shell = {k: v for k, v in traced.env.items() if k != "SHOP_TRACING"}
    assert launcher(untraced_shell, "start", "order_svc").returncode == 0
    paid = customer.get(f"/orders/{order_id}", params={"wait": 30}).json()
    assert paid["status"] == "Paid", paid

    spans = eventually(lambda: the_trace(order_id, HOPS), timeout_s=90)
    assert {span["traceId"] for span in spans} == {placing["traceId"]}
    relayed = [
        span
        for span in spans
        if span["name"].lower() == "orderplaced" and span.get("kind") == "CONSUMER"
    ]
    assert "product_svc" in {span["localEndpoint"]["serviceName"] for span in relayed}
    for span in relayed:  # every consumer of the relayed message is a child of what staged it
        assert span["parentId"] == placing["id"], span
    after = {
        span["name"].lower()
        for span in spans
        if span["localEndpoint"]["serviceName"] == "order_svc" and span.get("kind") == "CONSUMER"
    }
    assert {"stockreserved", "paymentsucceeded"} & after, after  # the restarted one, traced


def test_the_stack_shows_its_zipkin_and_its_logs_name_the_traces(traced: Shop) -> None:
    assert zipkin("/health")["status"] == "UP"
    status = launcher(traced.env, "status").stdout
    (row,) = [line for line in status.splitlines() if line.startswith("zipkin")]
    assert f"127.0.0.1:{ZIPKIN_PORT}" in row and "ready" in row
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    addresses = {line.split()[3] for line in listening.splitlines()}
    assert {a for a in addresses if a.endswith(f":{ZIPKIN_PORT}")} <= {
        f"127.0.0.1:{ZIPKIN_PORT}",
        f"[::ffff:127.0.0.1]:{ZIPKIN_PORT}",
    }
    logs = Path(traced.env["SHOP_STATE_DIR"]) / "logs"
    assert (logs / "zipkin.log").exists()

    # an order short of stock: product_svc says so in its log, inside the span that applies it
    admin, customer = traced.admin(), traced.customer("Short")
    product = new_product(admin, price="3.00", stock=1)
    placed = customer.post("/orders", json=order_body(customer, product, quantity=2))
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]

    def logged() -> list[str]:
        text = (logs / "product_svc.log").read_text()
        return [line for line in text.splitlines() if f"order {order_id} is short" in line]

    (line,) = eventually(logged, timeout_s=30)
    ids = re.search(r" trace=([0-9a-f]{32}) span=([0-9a-f]{16})\]", line)
    assert ids, line

    def applied() -> list[dict[str, Any]]:
        return [
            span
            for trace in traces_of(order_id)
            for span in trace
            if span["localEndpoint"]["serviceName"] == "product_svc"
            and span["name"].lower() == "orderplaced"
        ]

    (span,) = eventually(applied, timeout_s=60)
    assert (span["traceId"], span["id"]) == ids.groups()
