"""A complete shop for the end-to-end tests: ``python -m stack up`` on its own ports and folder
(every service its own process, real Kafka, real PostgreSQL), driven through the gateway."""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from gateway_svc.auth import ADMINS_ONLY
from stack.config import ROOT

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
            time.sleep(0.2)  # the first admin is created in the background at start
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


def launcher(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    offset = int(os.environ.get("SHOP_E2E_SHOP_HTTP_PORT_OFFSET", 200))
    kafka_port = int(os.environ.get("SHOP_E2E_SHOP_KAFKA_PORT", 29192))
    env = {
        **os.environ,
        "SHOP_STATE_DIR": str(tmp_path_factory.mktemp("shop")),
        "SHOP_KAFKA_PORT": str(kafka_port),
        "SHOP_KAFKA_CONTROLLER_PORT": str(kafka_port + 1),
        "SHOP_PG_PORT": os.environ.get("SHOP_E2E_SHOP_PG_PORT", "55534"),
        "SHOP_HTTP_PORT_OFFSET": str(offset),
        "SHOP_ADMIN_EMAIL": ADMIN_EMAIL,
        "SHOP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "RATE_LIMIT_PER_MINUTE": "6000",
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
