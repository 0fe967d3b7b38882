"""``make demo``: a small catalog and a few orders through the gateway, each order's timeline
printed as it happens: one that succeeds, one out of stock, one declined, one cancelled after
payment (refunded), one shipped.

Talks to the running stack only through its public HTTP API, as any client would.
"""

import os
import sys
import threading
import time
import uuid
from typing import Any

import httpx

from stack.config import StackConfig
from stack.services import DEFAULT_ADMIN_EMAIL, SERVICES

GATEWAY = next(service for service in SERVICES if service.name == "gateway_svc")
_print_lock = threading.Lock()


def say(line: str) -> None:
    with _print_lock:
        print(f"{time.strftime('%H:%M:%S')}  {line}", flush=True)


class Api:
    def __init__(self, base: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base, headers=headers, timeout=40)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise SystemExit(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def until(self, path: str, found: Any) -> Any:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = self.http.get(path)
            if response.status_code == 200 and found(response.json()):
                return response.json()
            time.sleep(0.2)
        raise SystemExit(f"gave up waiting for {path}")


def login(base: str, email: str, password: str) -> Api:
    tokens = Api(base).call("POST", "/auth/login", json={"email": email, "password": password})
    return Api(base, tokens["access_token"])


def follow(api: Api, label: str, order_id: str, shown: int = 0) -> dict[str, Any]:
    """Print each new step of the order's history (after the first ``shown``) until it settles."""
    order: dict[str, Any] = {}
    for _ in range(10):
        order = api.call("GET", f"/orders/{order_id}", params={"wait": 10})
        for step in order["history"][shown:]:
            reason = f" ({step['reason']})" if step["reason"] else ""
            say(f"[{label}] {step['status']}{reason}")
        shown = len(order["history"])
        if order["status"] != "Pending":
            break
    payment = order.get("payment") or {}
    say(f"[{label}] total {order['total_price']}, payment {payment.get('status', '-')}")
    return order


def main() -> int:
    base = os.environ.get("SHOP_GATEWAY_URL", GATEWAY.url)
    admin_email = os.environ.get("SHOP_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL)
    admin_password = os.environ.get("SHOP_ADMIN_PASSWORD") or StackConfig().secret("admin_password")
    try:
        httpx.get(f"{base}/healthz", timeout=2)
    except httpx.HTTPError:
        print(f"no gateway at {base}: run `make up` first", file=sys.stderr)
        return 1
    admin = login(base, admin_email, admin_password)

    say("admin creates a category and three products")
    category = admin.call("POST", "/categories", json={"name": f"Demo {uuid.uuid4().hex[:4]}"})
    products = {}
    for name, price, stock in (
        ("Kettle", "24.90", 10),
        ("Teapot", "18.00", 1),
        ("Mug", "6.50", 50),
    ):
        products[name] = admin.call(
            "POST",
            "/products",
            json={
                "name": name,
                "description": f"a {name.lower()}",
                "price": price,
                "category_id": category["id"],
                "stock": stock,
            },
        )["id"]

    email = f"demo-{uuid.uuid4().hex[:6]}@example.com"
    Api(base).call(
        "POST",
        "/auth/register",
        json={"name": "Demo Customer", "email": email, "password": "demo-password"},
    )
    customer = login(base, email, "demo-password")
    say(f"customer {email} registers and saves two cards (tok_visa, tok_decline)")
    visa = customer.call(
        "POST", "/me/payment-methods", json={"method": "card", "token": "tok_visa"}
    )["id"]
    decline = customer.call(
        "POST", "/me/payment-methods", json={"method": "card", "token": "tok_decline"}
    )["id"]

    def order(label: str, items: dict[str, int], method: str) -> str:
        placed = customer.call(
            "POST",
            "/orders",
            json={
                "items": [{"product_id": products[n], "quantity": q} for n, q in items.items()],
                "payment_method_id": method,
            },
            headers={"Idempotency-Key": f"demo-{label}-{uuid.uuid4().hex[:6]}"},
        )
        say(f"[{label}] placed order {placed['id']}: {items}")
        return str(placed["id"])

    runs = {
        "success": order("success", {"Kettle": 1, "Mug": 2}, visa),
        "out-of-stock": order("out-of-stock", {"Teapot": 3}, visa),
        "declined": order("declined", {"Mug": 1}, decline),
        "refund": order("refund", {"Kettle": 2}, visa),
    }
    threads = [
        threading.Thread(target=follow, args=(customer, label, order_id))
        for label, order_id in runs.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    say("[refund] customer cancels the paid order")
    customer.call("POST", f"/orders/{runs['refund']}/cancel")
    customer.until(
        f"/orders/{runs['refund']}", lambda o: (o.get("payment") or {}).get("status") == "Refunded"
    )
    follow(customer, "refund", runs["refund"], shown=2)
    say("[success] admin ships it")
    admin.call("POST", f"/orders/{runs['success']}/ship")
    customer.until(f"/orders/{runs['success']}", lambda o: o["status"] == "Shipped")
    say("[success] Shipped")

    levels = {
        name: admin.call("GET", f"/products/{pid}")["stock"] for name, pid in products.items()
    }
    say(f"stock now: {levels}")
    notes = customer.call("GET", "/me/notifications")["items"]
    say(f"the customer has {len(notes)} notifications; watch the saga with:")
    print(
        f"    kcat -F {StackConfig().state_dir / 'kcat.conf'} -C -t orders.events -J -e", flush=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
