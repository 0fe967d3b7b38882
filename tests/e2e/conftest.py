"""A complete shop for the end-to-end tests: ``python -m stack up`` on its own ports and folder
(every service its own process, real Kafka, real PostgreSQL), driven through the gateway."""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.kafka_access import KafkaAccess
from gateway_svc.auth import ADMINS_ONLY
from stack.config import ROOT, StackConfig
from stack.services import SERVICES

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-for-tests"


@dataclass
class Shop:
    url: str
    env: dict[str, str]
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def service_url(self, base_port: int) -> str:
        return f"http://127.0.0.1:{base_port + int(self.env['SHOP_HTTP_PORT_OFFSET'])}"

    @property
    def config(self) -> StackConfig:
        """The launcher's view of this shop: its folder, ports and Kafka's settings."""
        env = self.env
        return StackConfig(
            state_dir=Path(env["SHOP_STATE_DIR"]),
            kafka_port=int(env["SHOP_KAFKA_PORT"]),
            kafka_controller_port=int(env["SHOP_KAFKA_CONTROLLER_PORT"]),
            pg_port=int(env["SHOP_PG_PORT"]),
            kafka_brokers=int(env.get("SHOP_KAFKA_BROKERS", "1")),
            kafka_security=env.get("SHOP_KAFKA_SECURITY", ""),
        )

    @property
    def kafka_access(self) -> KafkaAccess:
        """The shop's Kafka as its admin reaches it."""
        return self.config.kafka_access()

    def pg_url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.env['SHOP_PG_PORT']}/{database}"

    def customer(self, name: str = "Customer") -> "Client":
        email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
        password = "a long enough password"
        created = self.http.post(
            "/auth/register", json={"name": name, "email": email, "password": password}
        )
        assert created.status_code == 201, created.text
        return self.login(email, password)

    def admin(self) -> "Client":
        return self.login(ADMIN_EMAIL, ADMIN_PASSWORD)

    def login(self, email: str, password: str) -> "Client":
        deadline = time.monotonic() + 30
        while True:
            response = self.http.post("/auth/login", json={"email": email, "password": password})
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # e.g. a 503 while user_svc has many passwords to hash
        assert response.status_code == 200, response.text
        tokens = response.json()
        me = self.http.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        return Client(self, tokens, me.json())


@dataclass
class Client:
    shop: Shop
    tokens: dict[str, Any]
    profile: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.profile["id"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.shop.http.get(path, headers=self.headers, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.shop.http.post(path, headers=headers, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.shop.http.patch(path, headers=self.headers, **kwargs)


def eventually(check: Callable[[], Any], timeout_s: float = 30) -> Any:
    """Wait until ``check()`` is truthy (an accepted command's effect is eventually visible)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {timeout_s}s; last value {value!r}")
        time.sleep(0.1)


def visible(client: Client, path: str) -> dict[str, Any]:
    """Wait until an accepted command's effect can be read back."""

    def found() -> dict[str, Any] | None:
        response = client.get(path)
        return response.json() if response.status_code == 200 else None

    result: dict[str, Any] = eventually(found)
    return result


def new_product(admin: Client, *, price: str, stock: int) -> str:
    """A product in a new category, readable (and orderable) in the next request."""
    category = admin.post("/categories", json={"name": f"cat-{uuid.uuid4().hex[:6]}"})
    assert category.status_code == 201, category.text
    category_id = category.json()["id"]
    created = admin.post(
        "/products",
        json={
            "name": f"Widget {uuid.uuid4().hex[:6]}",
            "description": "a widget",
            "price": price,
            "category_id": category_id,
            "stock": stock,
        },
    )
    assert created.status_code == 201, created.text
    product_id: str = created.json()["id"]
    return product_id


def all_items(client: Client, path: str) -> list[dict[str, Any]]:
    """Every item of a paginated list, following ``next_cursor``."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = client.get(path, params=params).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def payment_method(customer: Client, token: str = "tok_visa") -> str:
    """A saved card of ``customer``, usable for orders."""
    added = customer.post("/me/payment-methods", json={"method": "card", "token": token})
    assert added.status_code == 201, added.text
    method_id: str = added.json()["id"]
    return method_id


def order_body(customer: Client, product: str, quantity: int = 1) -> dict[str, Any]:
    """An order of ``quantity`` of ``product``, paid with a new card of the customer's."""
    return {
        "items": [{"product_id": product, "quantity": quantity}],
        "payment_method_id": payment_method(customer),
    }


def told(customer: Client, notification_type: str) -> list[str]:
    """What the customer's notifications of this type say, newest first."""
    items = all_items(customer, "/me/notifications")
    return [item["message"] for item in items if item["type"] == notification_type]


def bootstrap(shop: Shop) -> str:
    """The shop's Kafka, for kcat and for tests that read its topics."""
    return f"127.0.0.1:{shop.env['SHOP_KAFKA_PORT']}"


def publish_with_kcat(shop: Shop, topic: str, key: str, message: dict[str, Any]) -> None:
    """Publish an envelope as a kcat user would: keyed, with its ``type`` header."""
    subprocess.run(
        [
            "kcat",
            "-P",
            "-b",
            bootstrap(shop),
            "-t",
            topic,
            "-k",
            key,
            "-H",
            f"type={message['type']}",
        ],
        input=json.dumps(message),
        text=True,
        capture_output=True,
        timeout=30,
        check=True,
    )


def jwt_secret(shop: Shop) -> str:
    return (Path(shop.env["SHOP_STATE_DIR"]) / "secrets" / "jwt_secret").read_text().strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def gateway_beside(shop: Shop, **settings: str) -> Iterator[str]:
    """Another gateway process on the stack's services, broker and JWT secret, set up as
    ``settings`` say (environment variables); yields its base URL."""
    port = _free_port()
    env = {
        **shop.env,
        **{
            f"{service.name.upper()}_URL": shop.service_url(service.base_port)
            for service in SERVICES
        },
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{shop.env['SHOP_KAFKA_PORT']}",
        "JWT_SECRET": jwt_secret(shop),
        "HTTP_PORT": str(port),
        **settings,
    }
    log = Path(shop.env["SHOP_STATE_DIR"]) / "logs" / f"gateway_svc-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway_svc"], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(base):
            assert process.poll() is None, f"the extra gateway exited; see {log}"
            assert time.monotonic() < deadline, f"the extra gateway is not ready; see {log}"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def launcher(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@contextmanager
def stack_up(
    state_dir: Path, *, kafka_port: int, pg_port: int, offset: int, **settings: str
) -> Iterator[Shop]:
    """``python -m stack up`` on these ports and folder, with ``settings`` in its environment;
    ``down`` at the end."""
    env = {
        **os.environ,
        "SHOP_STATE_DIR": str(state_dir),
        "SHOP_KAFKA_PORT": str(kafka_port),
        "SHOP_KAFKA_CONTROLLER_PORT": str(kafka_port + 1),
        "SHOP_PG_PORT": str(pg_port),
        "SHOP_HTTP_PORT_OFFSET": str(offset),
        "SHOP_ADMIN_EMAIL": ADMIN_EMAIL,
        "SHOP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "RATE_LIMIT_PER_MINUTE": "6000",
        "REGISTRATIONS_PER_MINUTE": "6000",
        **settings,
    }
    env.pop("DATABASE_URL", None)
    env.pop("JWT_SECRET", None)
    up = launcher(env, "up")
    if up.returncode != 0:
        launcher(env, "down")
        pytest.fail(f"the shop did not come up:\n{up.stdout}\n{up.stderr}")
    shop = Shop(f"http://127.0.0.1:{8000 + offset}", env)
    try:
        yield shop
    finally:
        shop.http.close()
        launcher(env, "down")


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    with stack_up(
        tmp_path_factory.mktemp("shop"),
        kafka_port=int(os.environ.get("SHOP_E2E_SHOP_KAFKA_PORT", 29192)),
        pg_port=int(os.environ.get("SHOP_E2E_SHOP_PG_PORT", "25534")),
        offset=int(os.environ.get("SHOP_E2E_SHOP_HTTP_PORT_OFFSET", 200)),
    ) as running:
        yield running


def operations(spec: dict[str, Any]) -> list[str]:
    """``"METHOD /path"`` of every operation of an OpenAPI document."""
    return sorted(
        f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item
    )


def admin_operations(spec: dict[str, Any]) -> list[str]:
    """The operations that document a 403 for everyone but admins."""
    return [
        label
        for label in operations(spec)
        if _operation(spec, label)["responses"].get("403", {}).get("description") == ADMINS_ONLY
    ]


def _operation(spec: dict[str, Any], label: str) -> dict[str, Any]:
    method, path = label.split(" ", 1)
    found: dict[str, Any] = spec["paths"][path][method.lower()]
    return found
