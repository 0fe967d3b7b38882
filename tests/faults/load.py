"""A steady stream of orders through the gateway, open loop: orders leave at a fixed rate
whatever the shop answers. A client retries a refused order with the same Idempotency-Key, as a
real client would, so every order ends either accepted (202) or refused (the client was told).
A share of the accepted orders can be cancelled by their customer at once, while in flight."""

import asyncio
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx

CANCEL_SHARE = 0.03
"""The share of orders their customer cancels right after acceptance, in the fault suite and
the soak."""


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
    sent_at: dict[str, float] = field(default_factory=dict)
    """order id -> when the client first sent it (wall clock, comparable to PostgreSQL's)."""
    refused: int = 0
    retries: int = 0
    cancels: dict[int, int] = field(default_factory=dict)
    """HTTP status -> how many of the customers' cancellations got it (202, 409...)."""


class OrderStream:
    """Places orders at ``rate`` per second from a background thread until stopped, or until
    ``until`` orders have left in all (then :meth:`wait` returns); it can start again after
    either, with the same tally. ``cancel_share`` of the accepted orders are cancelled by
    their customer right after the 202."""

    def __init__(
        self,
        gateway: str,
        buyers: list[Buyer],
        catalog: Catalog,
        rate: float,
        seed: int = 7,
        cancel_share: float = 0.0,
    ) -> None:
        self._gateway = gateway
        self._buyers = buyers
        self._catalog = catalog
        self._rate = rate
        self._cancel_share = cancel_share
        self._random = random.Random(seed)
        self.until: int | None = None
        self._launched = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tally = Tally()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    @property
    def launched(self) -> int:
        """Orders that have left so far, in all runs."""
        return self._launched

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> Tally:
        self._stop.set()
        return self.wait()

    def wait(self) -> Tally:
        """The tally once the stream has ended (stopped, or ``until`` reached) and every order
        it sent has its answer."""
        if self._thread is not None:
            self._thread.join(timeout=None if self.until is not None else 180)
        return self.tally

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self._gateway, timeout=40) as http:
            tasks: set[asyncio.Task[None]] = set()
            started = time.monotonic()
            n = 0
            while not self._stop.is_set() and (self.until is None or self._launched < self.until):
                due = started + n / self._rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                task = asyncio.create_task(self._order(http))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
                self._launched += 1
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
        sent_at = time.time()
        for attempt in range(8):
            try:
                response = await http.post("/orders", json=body, headers=headers)
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 202:
                order_id = response.json()["id"]
                with self._lock:
                    self.tally.accepted[order_id] = kind
                    self.tally.sent_at[order_id] = sent_at
                if self._cancel_share and self._random.random() < self._cancel_share:
                    await self._cancel(http, order_id, headers["Authorization"])
                return
            if response is not None and response.status_code < 500 and response.status_code != 429:
                break  # the client's own mistake: retrying will not help
            with self._lock:
                self.tally.retries += 1
            await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
        with self._lock:
            self.tally.refused += 1

    async def _cancel(self, http: httpx.AsyncClient, order_id: str, authorization: str) -> None:
        try:
            response = await http.post(
                f"/orders/{order_id}/cancel", headers={"Authorization": authorization}
            )
            status = response.status_code
        except httpx.HTTPError:
            status = 0  # no answer: the customer does not know either
        with self._lock:
            self.tally.cancels[status] = self.tally.cancels.get(status, 0) + 1
