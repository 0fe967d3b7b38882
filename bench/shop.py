"""The shop as a client sees it, through the gateway: an admin who builds the catalog, and
customers with two saved cards each (one that pays, one that the provider declines)."""

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from stack.config import StackConfig
from stack.progress import step
from stack.services import DEFAULT_ADMIN_EMAIL

T = TypeVar("T")
PASSWORD = "bench-password-1"  # noqa: S105 (the bench customers' own)
INITIAL_STOCK = 1_000_000
RESTOCK_BELOW = 500_000
SCARCE_STOCK = 2
TOKEN_REFRESH_AFTER_S = 10 * 60
"""Access tokens live 15 minutes; a full bench runs longer than that."""


class SetupError(RuntimeError):
    pass


@dataclass
class Customer:
    email: str
    access_token: str
    refresh_token: str
    issued_at: float
    visa: str = ""
    decline: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass(frozen=True)
class Catalog:
    category: str
    hot: tuple[str, ...]
    regular: tuple[str, ...]
    scarce: str

    @property
    def stocked(self) -> tuple[str, ...]:
        return self.hot + self.regular


def admin_credentials(config: StackConfig) -> tuple[str, str]:
    """As the launcher (and ``make demo``) do: the environment, else the stack's secret file."""
    email = os.environ.get("SHOP_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL)
    password = os.environ.get("SHOP_ADMIN_PASSWORD") or config.secret("admin_password")
    return email, password


class Gateway:
    """A small async client for setup calls: retries 429 after Retry-After and 503 (an upstream
    too slow to answer, e.g. hashing passwords on a busy machine) after a pause; fails loudly on
    anything else unexpected."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)

    async def close(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        expect: Sequence[int] = (200, 201, 202),
        **kwargs: Any,
    ) -> Any:
        for _ in range(30):
            response = await self.http.request(method, path, headers=headers, **kwargs)
            if response.status_code == 429:
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            if response.status_code == 503:
                await asyncio.sleep(1)
                continue
            if response.status_code not in expect:
                raise SetupError(f"{method} {path} -> {response.status_code}: {response.text}")
            return response.json() if response.content else None
        raise SetupError(f"{method} {path}: still {response.status_code} after 30 tries")

    async def found(self, path: str, headers: dict[str, str] | None = None) -> Any | None:
        response = await self.http.get(path, headers=headers)
        return response.json() if response.status_code == 200 else None


async def until(what: str, check: Callable[[], Awaitable[T | None]], timeout_s: float = 60) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SetupError(f"gave up waiting for {what} after {timeout_s:.0f}s")
        await asyncio.sleep(0.2)


async def visible(gateway: Gateway, path: str) -> Any:
    """Wait until an accepted command's effect can be read back."""
    return await until(path, lambda: gateway.found(path))


async def login(gateway: Gateway, email: str, password: str) -> Customer:
    tokens = await gateway.call("POST", "/auth/login", json={"email": email, "password": password})
    return Customer(
        email=email,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        issued_at=time.monotonic(),
    )


async def admin_login(gateway: Gateway, config: StackConfig) -> Customer:
    """The first admin exists once user_svc is ready, which ``make up`` waits for."""
    return await login(gateway, *admin_credentials(config))


async def build_catalog(
    gateway: Gateway, admin: Customer, run_id: str, *, hot: int = 3, regular: int = 17
) -> Catalog:
    category = await gateway.call(
        "POST", "/categories", headers=admin.headers, json={"name": f"Bench {run_id}"}
    )
    await visible(gateway, f"/categories/{category['id']}")

    async def product(name: str, price: str, stock: int) -> str:
        created = await gateway.call(
            "POST",
            "/products",
            headers=admin.headers,
            json={
                "name": f"{name} {run_id}",
                "description": "made by make bench",
                "price": price,
                "category_id": category["id"],
                "stock": stock,
            },
        )
        return str(created["id"])

    hot_ids = [await product(f"Hot {n}", f"{9 + n}.99", INITIAL_STOCK) for n in range(hot)]
    regular_ids = [
        await product(f"Item {n}", f"{(n % 40) + 1}.50", INITIAL_STOCK) for n in range(regular)
    ]
    scarce_id = await product("Scarce", "99.00", SCARCE_STOCK)
    for product_id in (*hot_ids, *regular_ids, scarce_id):
        await visible(gateway, f"/products/{product_id}")
    return Catalog(str(category["id"]), tuple(hot_ids), tuple(regular_ids), scarce_id)


async def restock(gateway: Gateway, admin: Customer, catalog: Catalog) -> int:
    """Top up every stocked product that fell below half its first stock; returns how many."""
    topped = 0
    for product_id in catalog.stocked:
        product = await gateway.call("GET", f"/products/{product_id}")
        if int(product["stock"]) < RESTOCK_BELOW:
            await gateway.call(
                "POST",
                f"/products/{product_id}/stock",
                headers=admin.headers,
                json={"change": INITIAL_STOCK - int(product["stock"]), "reason": "Restock"},
            )
            topped += 1
    return topped


async def customers(
    gateway: Gateway, run_id: str, count: int, concurrency: int = 2
) -> list[Customer]:
    """Register and log in ``count`` customers, each with a card that pays and one that is
    declined; returns once the gateway accepts both cards for orders."""
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int) -> Customer:
        email = f"bench-{run_id}-{index}@example.com"
        async with limit:
            await gateway.call(
                "POST",
                "/auth/register",
                # each from an address of its own: the gateway limits accounts per address
                headers={"X-Forwarded-For": f"127.1.{index // 256}.{index % 256}"},
                json={"name": f"Bench customer {index}", "email": email, "password": PASSWORD},
                expect=(201, 409),  # 409: a retry after a 503 whose first try went through
            )
            customer = await login(gateway, email, PASSWORD)
            cards = {}
            for card in ("tok_visa", "tok_decline"):
                added = await gateway.call(
                    "POST",
                    "/me/payment-methods",
                    headers=customer.headers,
                    json={"method": "card", "token": card},
                )
                cards[card] = str(added["id"])
            customer.visa, customer.decline = cards["tok_visa"], cards["tok_decline"]
        return customer

    made: list[Customer] = []
    for start in range(0, count, 10):
        made += await asyncio.gather(*(one(n) for n in range(start, min(start + 10, count))))
        step("bench", f"customers: {len(made)}/{count} registered")
    for customer in made:

        async def listed(customer: Customer = customer) -> bool:
            page = await gateway.found("/me/payment-methods", headers=customer.headers)
            return page is not None and len(page["items"]) >= 2

        await until(f"{customer.email}'s cards", listed)
    return made


async def refresh_tokens(gateway: Gateway, people: Sequence[Customer]) -> int:
    """Renew the access tokens that are close to expiring; returns how many were renewed."""
    renewed = 0
    for person in people:
        if time.monotonic() - person.issued_at < TOKEN_REFRESH_AFTER_S:
            continue
        tokens = await gateway.call(
            "POST", "/auth/refresh", json={"refresh_token": person.refresh_token}
        )
        person.access_token = tokens["access_token"]
        person.refresh_token = tokens["refresh_token"]
        person.issued_at = time.monotonic()
        renewed += 1
    return renewed


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]
