"""A property-based fuzz of the gateway from its own OpenAPI schema, against the whole stack.

schemathesis turns every operation of the schema into Hypothesis strategies of valid and of
invalid requests; each operation is fuzzed as a customer, and the admin-only ones again as an
admin. Every response must be no server error (no 5xx), a documented
response must match its schema and content type, and invalid input must be refused with a 4xx.
Generation is derandomized, so a run sends the same requests each time. The figures (requests
sent, by role and status class) are printed at the end; a run must send ``MIN_REQUESTS``.

Beyond HTTP, every command the gateway accepted (202) must be one its service can apply: once the
consumers have caught up, no dead letter may name a resource the fuzz was told was accepted.

The operations come from the gateway app's own schema, so a new route is fuzzed without a change
here (the schema the stack serves is checked to be that one); the admin-only ones are those that
document the admins-only 403.
"""

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
)

from common.lag import consumer_lag
from gateway_svc.app import create_app
from gateway_svc.settings import Settings
from schemas.topics import CONSUMED_TOPICS
from stack import dlq
from tests.e2e.conftest import (
    Client,
    Shop,
    admin_operations,
    new_product,
    operations,
    payment_method,
)

FUZZ_EXAMPLES = int(os.environ.get("SHOP_FUZZ_EXAMPLES", "25"))
"""Generated requests per operation, role and round (valid, invalid, valid on existing ids)."""
MIN_REQUESTS = 1000
FUZZ_ADDRESS = "198.51.100.23"
"""Sent as X-Forwarded-For (the gateway trusts it from loopback): the fuzz's failed logins and
anonymous requests fill their own per-address buckets, not those of the other tests."""
LONGEST_WAIT_S = 0.2
"""GET /orders/{id}?wait= may park for 30 s on an order that does not exist; the fuzz waits less."""
NOT_FUZZED = {"GET /readyz", "GET /orders/{order_id}/events"}
"""Readiness answers 503 by design while a dependency is away; it takes no input. An order's
event stream stays open until the order is final (tests/e2e/test_api_writes.py covers it)."""

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    negative_data_rejection,
]

SPEC = create_app(Settings(jwt_secret="unused")).openapi()
SCHEMA = schemathesis.openapi.from_dict(SPEC)
OPERATIONS = [label for label in operations(SPEC) if label not in NOT_FUZZED]
ADMIN_OPERATIONS = admin_operations(SPEC)

sent: Counter[tuple[str, str]] = Counter()
"""Requests the fuzz sent, by (role, status class)."""
accepted: set[str] = set()
"""The ids of what the gateway answered 202 to: commands now on their way."""


def _session(role: str) -> requests.Session:
    session = requests.Session()

    def tally(response: requests.Response, *args: object, **kwargs: object) -> None:
        sent[(role, f"{response.status_code // 100}xx")] += 1
        if response.status_code == 202:
            accepted.add(str(response.json()["id"]))

    session.hooks["response"].append(tally)
    return session


@pytest.fixture(scope="module")
def fuzz_customer(shop: Shop) -> Client:
    return shop.customer("Fuzz")


@pytest.fixture(scope="module")
def fuzz_admin(shop: Shop) -> Client:
    return shop.admin()


@pytest.fixture(scope="module")
def customer_http() -> Iterator[requests.Session]:
    with _session("customer") as session:
        yield session


@pytest.fixture(scope="module")
def admin_http() -> Iterator[requests.Session]:
    with _session("admin") as session:
        yield session


@pytest.fixture(scope="module")
def existing(fuzz_admin: Client, fuzz_customer: Client) -> dict[str, str]:
    """Real ids for path parameters: a round of valid requests aims at things that exist."""
    product_id = new_product(fuzz_admin, price="10.00", stock=1000)
    product = fuzz_admin.get(f"/products/{product_id}").json()
    placed = fuzz_customer.post(
        "/orders",
        json={
            "items": [{"product_id": product_id, "quantity": 1}],
            "payment_method_id": payment_method(fuzz_customer),
        },
    )
    assert placed.status_code == 202, placed.text
    return {
        "product_id": product_id,
        "category_id": product["category_id"],
        "order_id": placed.json()["id"],
    }


def _operation(label: str) -> APIOperation:
    method, path = label.split(" ", 1)
    return SCHEMA[path][method]


def _fuzz(
    operation: APIOperation,
    base_url: str,
    http: requests.Session,
    client: Client,
    existing: dict[str, str],
) -> None:
    headers = {**client.headers, "X-Forwarded-For": FUZZ_ADDRESS}
    names = {parameter.name for parameter in operation.path_parameters}
    rounds: list[tuple[GenerationMode, dict[str, str]]] = [
        (GenerationMode.POSITIVE, {}),
        (GenerationMode.NEGATIVE, {}),
    ]
    if names and names <= existing.keys():
        rounds.append((GenerationMode.POSITIVE, {name: existing[name] for name in names}))

    def call(case: Case) -> None:
        wait = (case.query or {}).get("wait")
        if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > LONGEST_WAIT_S:
            case.query["wait"] = LONGEST_WAIT_S
        response = case.call(base_url=base_url, session=http, timeout=30)
        case.validate_response(response, checks=CHECKS)

    for mode, path_parameters in rounds:
        strategy = operation.as_strategy(
            generation_mode=mode, headers=headers, path_parameters=path_parameters or None
        )
        fuzz = settings(
            max_examples=FUZZ_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )(given(case=strategy)(call))
        try:
            fuzz()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, "no valid request could be generated"


def test_the_stack_serves_the_schema_that_is_fuzzed(shop: Shop) -> None:
    assert shop.http.get("/openapi.json").json() == SPEC


@pytest.mark.parametrize("label", OPERATIONS)
def test_gateway_answers_a_customer_without_server_errors(
    label: str,
    shop: Shop,
    fuzz_customer: Client,
    customer_http: requests.Session,
    existing: dict[str, str],
) -> None:
    _fuzz(_operation(label), shop.url, customer_http, fuzz_customer, existing)


@pytest.mark.parametrize("label", ADMIN_OPERATIONS)
def test_gateway_answers_an_admin_without_server_errors(
    label: str,
    shop: Shop,
    fuzz_admin: Client,
    admin_http: requests.Session,
    existing: dict[str, str],
) -> None:
    _fuzz(_operation(label), shop.url, admin_http, fuzz_admin, existing)


def test_fuzz_sent_enough_requests_and_got_no_server_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    total = sum(sent.values())
    if total == 0:
        pytest.skip("the fuzz tests did not run in this session")
    server_errors = sum(n for (_, status), n in sent.items() if status == "5xx")
    figures = ", ".join(f"{role} {status}: {n}" for (role, status), n in sorted(sent.items()))
    with capsys.disabled():
        print(f"\nfuzz: {total} generated requests sent, {server_errors} server errors ({figures})")
    assert server_errors == 0
    assert total >= MIN_REQUESTS


def test_no_command_the_fuzz_got_accepted_was_dead_lettered(shop: Shop) -> None:
    if not accepted:
        pytest.skip("the fuzz tests did not run in this session")
    access = shop.kafka_access
    deadline = time.monotonic() + 60
    while (behind := sum(asyncio.run(consumer_lag(access)).values())) > 0:
        assert time.monotonic() < deadline, f"consumers still {behind} messages behind"
        time.sleep(0.5)
    dead = [
        f"{letter.service}: {letter.headers.get('type')} {letter.headers.get('dlq.reason')}"
        for service in CONSUMED_TOPICS
        for letter in asyncio.run(dlq.read(access, service))
        if _mentions(json.loads(letter.value or b"null"), accepted)
    ]
    assert not dead, "\n".join(dead)


def _mentions(value: object, ids: set[str]) -> bool:
    if isinstance(value, dict):
        return any(_mentions(item, ids) for item in value.values())
    if isinstance(value, list):
        return any(_mentions(item, ids) for item in value)
    return isinstance(value, str) and value in ids
