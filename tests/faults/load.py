"""A steady stream of orders through the gateway, open loop: orders leave at a fixed rate
whatever the shop answers. A client retries a refused order with the same Idempotency-Key, as a
real client would, so every order ends either accepted (202) or refused (the client was told)."""

import asyncio
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx


@dataclass
class Buyer:
    token: str
    card: str
    declining_card: str


@dataclass
class Catalog:
    plenty: list[str]
    sold_out: str


@dataclass
class Tally:
    sent: int = 0
    accepted: dict[str, str] = field(default_factory=dict)
    """order id -> the kind of order it was (ok, decline, out_of_stock)."""
    refused: int = 0
    retries: int = 0


class OrderStream:
    """Places orders at ``rate`` per second from a background thread until stopped."""

    def __init__(
        self, gateway: str, buyers: list[Buyer], catalog: Catalog, rate: float, seed: int = 7
    ) -> None:
        self._gateway = gateway
        self._buyers = buyers
        self._catalog = catalog
        self._rate = rate
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tally = Tally()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    def stop(self) -> Tally:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=180)
        return self.tally

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self._gateway, timeout=40) as http:
            tasks: set[asyncio.Task[None]] = set()
            started = time.monotonic()
            n = 0
            while not self._stop.is_set():
                due = started + n / self._rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                task = asyncio.create_task(self._order(http))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _order(self, http: httpx.AsyncClient) -> None:
        buyer = self._random.choice(self._buyers)
        roll = self._random.random()
        kind = "ok" if roll < 0.8 else "decline" if roll < 0.9 else "out_of_stock"
        product = (
            self._catalog.sold_out
            if kind == "out_of_stock"
            else self._random.choice(self._catalog.plenty)
        )
        body = {
            "items": [{"product_id": product, "quantity": self._random.randint(1, 2)}],
            "payment_method_id": buyer.declining_card if kind == "decline" else buyer.card,
        }
        headers = {"Authorization": f"Bearer {buyer.token}", "Idempotency-Key": uuid.uuid4().hex}
        with self._lock:
            self.tally.sent += 1
        for attempt in range(8):
            try:
                response = await http.post("/orders", json=body, headers=headers)
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 202:
                with self._lock:
                    self.tally.accepted[response.json()["id"]] = kind
                return
            if response is not None and response.status_code < 500 and response.status_code != 429:
                break  # the client's own mistake: retrying will not help
            with self._lock:
                self.tally.retries += 1
            await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
        with self._lock:
            self.tally.refused += 1
