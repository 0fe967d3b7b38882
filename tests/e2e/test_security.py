"""Who may do what, through the gateway of a whole stack: object-level and property-level
authorisation, tokens (tampered, unsigned, expired, refresh tokens used twice), rate limits and
login throttling, oversized bodies; then no secrets in the repository or in the stack's logs, and
no known vulnerability in the installed dependencies.

Some cases need a gateway configured unlike the stack's (a small rate limit) or a second replica
(state that must not live in one gateway's memory): those start their own gateway process beside
the stack's, on the same services, broker and JWT secret."""

import base64
import json
import math
import random
import re
import string
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from gateway_svc.app import create_app
from gateway_svc.settings import Settings
from stack.config import ROOT
from tests.e2e.conftest import (
    ADMIN_PASSWORD,
    Client,
    Shop,
    admin_operations,
    eventually,
    gateway_beside,
    jwt_secret,
    new_product,
    operations,
    payment_method,
)

SPEC = create_app(Settings(jwt_secret="unused")).openapi()
ADMIN_ONLY = set(admin_operations(SPEC))
PUBLIC_BY_ID = {"GET /categories/{category_id}", "GET /products/{product_id}"}
OWNER_ONLY = {
    "GET /orders/{order_id}",
    "GET /orders/{order_id}/events",
    "POST /orders/{order_id}/cancel",
}
PASSWORD = "security tests' own password"
MAX_BODY = Settings().max_body_bytes


@pytest.fixture(scope="module")
def admin(shop: Shop) -> Client:
    return shop.admin()


@pytest.fixture(scope="module")
def product(admin: Client) -> str:
    return new_product(admin, price="10.00", stock=1000)


def _customer(shop: Shop, name: str) -> Client:
    email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    created = shop.http.post(
        "/auth/register", json={"name": name, "email": email, "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    return shop.login(email, PASSWORD)


@pytest.fixture(scope="module")
def ann(shop: Shop) -> Client:
    return _customer(shop, "Ann")


@pytest.fixture(scope="module")
def bob(shop: Shop) -> Client:
    return _customer(shop, "Bob")


@pytest.fixture(scope="module")
def anns_order(ann: Client, product: str) -> dict[str, Any]:
    placed = ann.post(
        "/orders",
        json={
            "items": [{"product_id": product, "quantity": 1}],
            "payment_method_id": payment_method(ann),
        },
    )
    assert placed.status_code == 202, placed.text
    order = ann.get(f"/orders/{placed.json()['id']}", params={"wait": 25}).json()
    assert order["status"] == "Paid", order
    return dict(order)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Object-level authorisation


def test_every_route_that_takes_an_id_has_its_owner_rule_tested() -> None:
    with_id = {label for label in operations(SPEC) if "{" in label}
    assert with_id == PUBLIC_BY_ID | OWNER_ONLY | {x for x in ADMIN_ONLY if "{" in x}


def test_another_customers_order_does_not_exist_for_reading_waiting_streaming_or_cancelling(
    bob: Client, anns_order: dict[str, Any]
) -> None:
    order_id = anns_order["id"]
    assert bob.get(f"/orders/{order_id}").status_code == 404
    assert bob.get(f"/orders/{order_id}", params={"wait": 1}).status_code == 404
    assert bob.get(f"/orders/{order_id}/events").status_code == 404
    assert bob.post(f"/orders/{order_id}/cancel").status_code == 404
    assert order_id not in {order["id"] for order in bob.get("/orders").json()["items"]}
    assert bob.get("/orders", params={"user_id": anns_order["user_id"]}).status_code == 403


def test_an_order_cancelled_by_nobody_but_its_owner_stays_paid(
    ann: Client, bob: Client, anns_order: dict[str, Any]
) -> None:
    bob.post(f"/orders/{anns_order['id']}/cancel")
    assert ann.get(f"/orders/{anns_order['id']}").json()["status"] == "Paid"


def test_a_customer_cannot_order_with_another_customers_card_or_address(
    ann: Client, bob: Client, product: str
) -> None:
    anns_card = payment_method(ann)
    address = ann.post(
        "/me/addresses", json={"street": "1 Main St", "city": "A", "state": "B", "zip_code": "1"}
    )
    anns_address = address.json()["id"]
    eventually(
        lambda: any(a["id"] == anns_address for a in ann.get("/me/addresses").json()["items"])
    )
    items = [{"product_id": product, "quantity": 1}]

    with_card = bob.post("/orders", json={"items": items, "payment_method_id": anns_card})
    assert with_card.status_code == 422
    assert with_card.json()["detail"][0]["loc"] == ["body", "payment_method_id"]
    with_address = bob.post(
        "/orders",
        json={"items": items, "payment_method_id": payment_method(bob), "address_id": anns_address},
    )
    assert with_address.status_code == 422
    assert with_address.json()["detail"][0]["loc"] == ["body", "address_id"]
    assert anns_card not in {m["id"] for m in bob.get("/me/payment-methods").json()["items"]}
    assert anns_address not in {a["id"] for a in bob.get("/me/addresses").json()["items"]}


def test_admin_routes_are_403_for_a_customer_and_401_without_a_token_even_on_real_ids(
    shop: Shop, bob: Client, product: str, anns_order: dict[str, Any]
) -> None:
    ids = {"product_id": product, "order_id": anns_order["id"]}
    for label in sorted(ADMIN_ONLY):
        method, path = label.split(" ", 1)
        url = path.format(**ids)
        body = {"name": "x", "price": "0.01", "change": 5, "url": "https://example.com/x.png"}
        as_customer = shop.http.request(method, url, json=body, headers=bob.headers)
        assert as_customer.status_code == 403, (label, as_customer.text)
        assert shop.http.request(method, url, json=body).status_code == 401, label
    assert Decimal(shop.http.get(f"/products/{product}").json()["price"]) == Decimal("10.00")


def test_only_the_routes_documented_as_admin_only_refuse_a_customer_as_such(
    shop: Shop, bob: Client
) -> None:
    for label in operations(SPEC):
        if label in ADMIN_ONLY or label == "GET /readyz":
            continue
        method, path = label.split(" ", 1)
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        response = shop.http.request(method, url, json={}, headers=bob.headers)
        assert response.status_code != 403 or "admins" not in response.text, label


def test_public_routes_with_an_id_answer_anyone(shop: Shop, product: str) -> None:
    found = shop.http.get(f"/products/{product}").json()
    assert shop.http.get(f"/categories/{found['category_id']}").status_code == 200


# Property-level authorisation


def test_registering_as_admin_makes_a_customer(shop: Shop) -> None:
    email = f"mallory-{uuid.uuid4().hex[:8]}@example.com"
    chosen_id = str(uuid.uuid4())
    created = shop.http.post(
        "/auth/register",
        json={
            "name": "Mallory",
            "email": email,
            "password": PASSWORD,
            "role": "Admin",
            "role_id": 1,
            "id": chosen_id,
            "is_admin": True,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "Customer" and created.json()["id"] != chosen_id
    mallory = shop.login(email, PASSWORD)
    assert mallory.profile["role"] == "Customer"
    claims = jwt.decode(mallory.tokens["access_token"], options={"verify_signature": False})
    assert claims["role"] == "Customer"
    assert mallory.post("/categories", json={"name": "mine"}).status_code == 403


def test_an_order_body_cannot_set_prices_totals_status_or_owner(
    ann: Client, bob: Client, product: str
) -> None:
    placed = bob.post(
        "/orders",
        json={
            "items": [{"product_id": product, "quantity": 2, "unit_price": "0.01"}],
            "payment_method_id": payment_method(bob),
            "total_price": "0.01",
            "status": "Shipped",
            "user_id": ann.id,
            "payment": {"status": "Paid", "amount": "0.01"},
        },
    )
    assert placed.status_code == 202, placed.text
    order = bob.get(f"/orders/{placed.json()['id']}", params={"wait": 25}).json()
    assert order["user_id"] == bob.id
    assert order["status"] == "Paid"
    assert Decimal(order["total_price"]) == Decimal("20.00")
    assert [item["unit_price"] for item in order["items"]] == ["10.00"]
    assert order["payment"] == {"status": "Paid", "amount": "20.00"}
    assert ann.get(f"/orders/{order['id']}").status_code == 404


def test_an_address_or_card_lands_with_its_sender_whatever_user_id_the_body_names(
    ann: Client, bob: Client
) -> None:
    address = bob.post(
        "/me/addresses",
        json={"street": "2 Side St", "city": "C", "state": "D", "zip_code": "2", "user_id": ann.id},
    ).json()["id"]
    card = bob.post(
        "/me/payment-methods", json={"method": "card", "token": "tok_visa", "user_id": ann.id}
    ).json()["id"]

    def listed(client: Client, path: str, item: str) -> bool:
        return item in {x["id"] for x in client.get(path).json()["items"]}

    eventually(lambda: listed(bob, "/me/addresses", address))
    eventually(lambda: listed(bob, "/me/payment-methods", card))
    assert not listed(ann, "/me/addresses", address)
    assert not listed(ann, "/me/payment-methods", card)


# Tokens


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _signed(key: str, claims: dict[str, Any], algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _claims(client: Client, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": client.id,
        "role": "Customer",
        "typ": "access",
        "iss": "shop",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def test_a_token_signed_with_the_real_secret_opens_me(shop: Shop, bob: Client) -> None:
    token = _signed(jwt_secret(shop), _claims(bob))
    assert shop.http.get("/me", headers=_bearer(token)).status_code == 200


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_tampered_unsigned_expired_and_foreign_tokens_are_refused(shop: Shop, bob: Client) -> None:
    secret = jwt_secret(shop)
    now = int(time.time())
    header, _, signature = bob.tokens["access_token"].split(".")
    as_admin = {**_claims(bob), "role": "Admin"}
    refused = {
        "claims edited, signature kept": f"{header}.{_b64(as_admin)}.{signature}",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(as_admin)}.",
        "alg none, signature kept": f"{_b64({'alg': 'none'})}.{_b64(as_admin)}.{signature}",
        "another key": _signed("not the shop's secret at all, but long", as_admin),
        "HS512 with the real secret": _signed(secret, as_admin, "HS512"),
        "expired": _signed(secret, _claims(bob, iat=now - 3600, exp=now - 60)),
        "without exp": _signed(secret, _claims(bob, exp=None)),
        "without sub": _signed(secret, _claims(bob, sub=None)),
        "another issuer": _signed(secret, _claims(bob, iss="elsewhere")),
        "a refresh token": bob.tokens["refresh_token"],
        "garbage": "garbage",
    }
    for name, token in refused.items():
        response = shop.http.get("/me", headers=_bearer(token))
        assert response.status_code == 401, name
        admin_route = shop.http.post("/categories", json={"name": "x"}, headers=_bearer(token))
        assert admin_route.status_code == 401, name


def test_an_expired_refresh_token_is_refused(shop: Shop, bob: Client) -> None:
    now = int(time.time())
    expired = _signed(
        jwt_secret(shop),
        _claims(bob, typ="refresh", fam=str(uuid.uuid4()), iat=now - 7200, exp=now - 1),
    )
    assert shop.http.post("/auth/refresh", json={"refresh_token": expired}).status_code == 401


# Refresh tokens: rotation with reuse detection


def _refresh(base: str, token: str, client_address: str = "203.0.113.10") -> httpx.Response:
    return httpx.post(
        f"{base}/auth/refresh",
        json={"refresh_token": token},
        headers={"X-Forwarded-For": client_address},
        timeout=30,
    )


def test_a_refresh_token_works_once_and_its_reuse_revokes_the_sign_in(shop: Shop) -> None:
    customer = _customer(shop, "Rita")
    first = _refresh(shop.url, customer.tokens["refresh_token"])
    assert first.status_code == 200
    renewed = first.json()
    assert renewed["refresh_token"] != customer.tokens["refresh_token"]
    assert shop.http.get("/me", headers=_bearer(renewed["access_token"])).status_code == 200

    reused = _refresh(shop.url, customer.tokens["refresh_token"])
    assert reused.status_code == 401
    assert _refresh(shop.url, renewed["refresh_token"]).status_code == 401  # the family is out

    again = shop.login(customer.profile["email"], PASSWORD)  # a new sign-in is a new family
    assert _refresh(shop.url, again.tokens["refresh_token"]).status_code == 200


def test_refresh_rotation_is_shared_by_replicas_and_survives_a_gateway_restart(
    shop: Shop,
) -> None:
    customer = _customer(shop, "Rex")
    with gateway_beside(shop) as replica:
        renewed = _refresh(replica, customer.tokens["refresh_token"])
        assert renewed.status_code == 200
    assert _refresh(shop.url, customer.tokens["refresh_token"]).status_code == 401
    with gateway_beside(shop) as restarted:
        assert _refresh(restarted, renewed.json()["refresh_token"]).status_code == 401


def test_one_refresh_token_raced_through_two_replicas_succeeds_once(shop: Shop) -> None:
    customer = _customer(shop, "Rae")
    token = customer.tokens["refresh_token"]
    with gateway_beside(shop) as replica, ThreadPoolExecutor(8) as pool:
        bases = [shop.url, replica] * 4
        codes = list(pool.map(lambda base: _refresh(base, token).status_code, bases))
    assert sorted(codes) == [200] + [401] * 7, codes


# Rate limits and login throttling


def test_requests_carry_rate_limit_headers(bob: Client) -> None:
    response = bob.get("/me")
    assert response.status_code == 200
    limit = int(response.headers["RateLimit-Limit"])
    assert 0 <= int(response.headers["RateLimit-Remaining"]) < limit
    assert int(response.headers["RateLimit-Reset"]) >= 0


def test_a_client_past_its_burst_gets_429_with_retry_after_and_others_do_not(shop: Shop) -> None:
    burst = 5
    settings = {"RATE_LIMIT_PER_MINUTE": "6", "RATE_LIMIT_BURST": str(burst)}  # 1 per 10 s
    with gateway_beside(shop, **settings) as strict:
        ann, bob = _customer(shop, "Ada"), _customer(shop, "Ben")
        answers = [
            httpx.get(f"{strict}/me", headers=ann.headers, timeout=30) for _ in range(burst + 2)
        ]
        assert [a.status_code for a in answers] == [200] * burst + [429, 429]
        assert [a.headers["RateLimit-Limit"] for a in answers] == [str(burst)] * (burst + 2)
        remaining = [int(a.headers["RateLimit-Remaining"]) for a in answers[:burst]]
        assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0
        limited = answers[-1]
        assert 1 <= int(limited.headers["Retry-After"]) <= 10
        assert limited.headers["RateLimit-Remaining"] == "0"
        assert httpx.get(f"{strict}/me", headers=bob.headers, timeout=30).status_code == 200
        anonymous = [
            httpx.get(f"{strict}/categories", headers={"X-Forwarded-For": "203.0.113.7"})
            for _ in range(burst + 1)
        ]
        assert anonymous[-1].status_code == 429
        elsewhere = httpx.get(f"{strict}/categories", headers={"X-Forwarded-For": "203.0.113.8"})
        assert elsewhere.status_code == 200
        assert httpx.get(f"{strict}/healthz").status_code == 200  # operators are not limited


def _login(base: str, email: str, password: str, address: str) -> httpx.Response:
    return httpx.post(
        f"{base}/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
        timeout=30,
    )


def test_the_owner_signs_in_from_another_address_after_15_failures_elsewhere(shop: Shop) -> None:
    victim = _customer(shop, "Vic")
    email = victim.profile["email"]
    with ThreadPoolExecutor(15) as pool:
        codes = Counter(
            pool.map(
                lambda n: _login(shop.url, email, f"guess {n}", "198.51.100.40").status_code,
                range(15),
            )
        )
    assert codes == Counter({401: 10, 429: 5}), codes
    refused = _login(shop.url, email, PASSWORD, "198.51.100.40")  # the guesser's own address
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert _login(shop.url, email, PASSWORD, "198.51.100.41").status_code == 200


def test_concurrent_guesses_each_count_so_at_most_the_limit_are_checked(shop: Shop) -> None:
    victim = _customer(shop, "Vince")
    email = victim.profile["email"]
    with ThreadPoolExecutor(40) as pool:
        codes = Counter(
            pool.map(
                lambda n: _login(shop.url, email, f"guess {n}", "198.51.100.42").status_code,
                range(40),
            )
        )
    assert codes[401] <= 10 and codes[429] >= 30 and set(codes) <= {401, 429}, codes


def test_an_emails_guesses_from_many_addresses_stop_at_its_ceiling(shop: Shop) -> None:
    victim = _customer(shop, "Vera")
    email = victim.profile["email"]
    with (
        gateway_beside(shop, LOGIN_ATTEMPTS_PER_MINUTE="1") as gateway,
        ThreadPoolExecutor(12) as pool,
    ):
        codes = Counter(
            pool.map(
                lambda n: _login(gateway, email, "wrong", f"198.51.100.{60 + n}").status_code,
                range(12),
            )
        )
    assert codes == Counter({401: 10, 429: 2}), codes  # 10: ten times the limit


def test_accounts_opened_from_one_address_are_throttled(shop: Shop) -> None:
    with gateway_beside(shop, REGISTRATIONS_PER_MINUTE="3") as gateway:

        def register(address: str) -> int:
            body = {"name": "R", "email": _nobody(), "password": "a long enough password"}
            headers = {"X-Forwarded-For": address}
            return httpx.post(f"{gateway}/auth/register", json=body, headers=headers).status_code

        codes = [register("198.51.100.80") for _ in range(5)]
        elsewhere = register("198.51.100.81")
    assert codes == [201, 201, 201, 429, 429] and elsewhere == 201, codes


def test_failed_logins_are_throttled_per_address_across_emails(shop: Shop) -> None:
    address, per_minute = "198.51.100.50", 1
    per_address = 10 * per_minute  # as LoginThrottle sets it
    with gateway_beside(shop, LOGIN_ATTEMPTS_PER_MINUTE=str(per_minute)) as gateway:
        started, failed = time.monotonic(), 0
        while (answer := _login(gateway, _nobody(), "x", address)).status_code == 401:
            failed += 1
            assert failed < 2 * per_address, "failed logins from one address are not throttled"
        assert answer.status_code == 429, answer.text
        refilled = (time.monotonic() - started) * per_address / 60
        assert per_address <= failed <= per_address + refilled + 1
        assert _login(gateway, _nobody(), "x", address).status_code == 429
        assert _login(gateway, _nobody(), "x", "198.51.100.51").status_code == 401


def _nobody() -> str:
    return f"nobody-{uuid.uuid4().hex[:10]}@example.com"


# Oversized bodies


def _chunks(total: int, size: int = 1024) -> Iterator[bytes]:
    for start in range(0, total, size):
        yield b" " * min(size, total - start)


def test_a_body_over_the_limit_is_413_by_content_length(shop: Shop) -> None:
    response = shop.http.post(
        "/auth/register",
        content=b" " * (MAX_BODY + 1),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


def test_a_chunked_body_over_the_limit_is_413_before_any_route_runs(
    shop: Shop, ann: Client, anns_order: dict[str, Any]
) -> None:
    register = shop.http.post(
        "/auth/register",
        content=_chunks(MAX_BODY + 1),
        headers={"content-type": "application/json"},
    )
    assert register.status_code == 413 and "content-length" not in register.request.headers
    cancel = shop.http.post(
        f"/orders/{anns_order['id']}/cancel", content=_chunks(4 * MAX_BODY), headers=ann.headers
    )
    assert cancel.status_code == 413
    assert ann.get(f"/orders/{anns_order['id']}").json()["status"] == "Paid"


def test_a_chunked_body_within_the_limit_is_served(shop: Shop) -> None:
    email = f"chunky-{uuid.uuid4().hex[:8]}@example.com"
    body = json.dumps({"name": "Chunky", "email": email, "password": PASSWORD}).encode()
    padded = body[:-1] + b" " * (MAX_BODY - len(body) - 1) + b"}"
    response = shop.http.post(
        "/auth/register",
        content=(padded[i : i + 999] for i in range(0, len(padded), 999)),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 201, response.text


# Secrets


PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----")
KNOWN_TOKENS = re.compile(
    r"AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{36}"  # GitHub
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|sk_live_[0-9A-Za-z]{24,}"  # Stripe
    r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"  # a JWT
)
SECRET_NAME = r"(?<![\w{])([A-Z][A-Z0-9_]*(?:SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY)[A-Z0-9_]*)"
QUOTED_LITERAL = re.compile(SECRET_NAME + r"[\"']?\s*[:=]\s*[\"']([^\"'$\s{][^\"']*)[\"']")
BARE_LITERAL = re.compile(SECRET_NAME + r"\s*[:=]\s*([^\"'$\s{][^\s\"'#]*)")
CANDIDATE = re.compile(r"[A-Za-z0-9+/_=-]{32,}")
INTEGRITY = ("sha512-", "sha384-", "sha256-", "sha1-")
"""A lock file's Subresource Integrity hashes: random-looking, and public."""
SECRET_FILES = re.compile(
    r"(^|/)(\.env(\..+)?|id_rsa|id_ed25519|[^/]+\.pem|[^/]+\.key|secrets/.*)$"
)


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _looks_random(token: str) -> bool:
    """A long run of base64 characters spread as evenly as a generated key's (a hash in hex
    tops out at 4 bits per character, English and identifiers well below 4.3)."""
    return _entropy(token) > 4.3 and any(c.isdigit() for c in token)


def secrets_in(path: str, text: str) -> list[str]:
    found = [f"{path}: private key" for _ in PRIVATE_KEY.finditer(text)]
    found += [f"{path}: token {m.group()[:12]}..." for m in KNOWN_TOKENS.finditer(text)]
    found += [
        f"{path}: random-looking {m.group()[:12]}..."
        for m in CANDIDATE.finditer(text)
        if _looks_random(m.group()) and not m.group().startswith(INTEGRITY)
    ]
    if not path.startswith("tests/"):
        literals = list(QUOTED_LITERAL.finditer(text))
        if not path.endswith(".py"):
            literals += BARE_LITERAL.finditer(text)
        found += [f"{path}: {m.group(1)} is given a literal value" for m in literals]
    return found


def test_the_secret_detector_finds_what_it_looks_for() -> None:
    alphabet = string.ascii_letters + string.digits + "_-"
    generated = "".join(random.Random(7).choices(alphabet, k=48))
    samples = {
        "a.txt": "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIE...",
        "b.py": f'token = "{generated}"',
        "c.env": "JWT_SECRET=hunter2hunter2",
        "d.py": 'SHOP_ADMIN_PASSWORD = "correct horse"',
        "e.yaml": "  JWT_SECRET: 'abcd1234'",
        "f.md": "Authorization: Bearer " + jwt.encode({"sub": "x" * 12}, "k" * 32),
    }
    for path, text in samples.items():
        assert secrets_in(path, text), path
    clean = {
        "g.yaml": "JWT_SECRET: ${JWT_SECRET}\nPOSTGRES_PASSWORD: ${POSTGRES_PASSWORD:-shop}",
        "h.py": 'jwt_secret: SecretStr = SecretStr("")\nIDS = UUID("6f1c7c1e-4f7e-4d0a-9a53")',
        "i.py": "admin_password = os.environ.get('SHOP_ADMIN_PASSWORD')",
        "package-lock.json": f'"integrity": "sha512-{generated}"',
    }
    for path, text in clean.items():
        assert not secrets_in(path, text), (path, secrets_in(path, text))


def test_the_repository_holds_no_secrets() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    paths = [path for path in listed.split("\0") if path]
    found = [f"{path}: a file of secrets" for path in paths if SECRET_FILES.search(path)]
    for path in paths:
        try:
            text = (ROOT / path).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        found += secrets_in(path, text)
    assert not found, "\n".join(found)


def test_no_known_vulnerability_in_the_installed_dependencies(tmp_path: Path) -> None:
    try:
        httpx.get("https://pypi.org/pypi/pip-audit/json", timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.skip(f"PyPI's advisory API cannot be reached from here ({exc!r})")
    report = tmp_path / "audit.json"
    audit = subprocess.run(
        [
            *(sys.executable, "-m", "pip_audit", "--vulnerability-service", "pypi"),
            *("--skip-editable", "--progress-spinner", "off", "-f", "json", "-o", str(report)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if not report.exists():
        pytest.fail(f"pip-audit did not run:\n{audit.stderr}")
    dependencies = json.loads(report.read_text())["dependencies"]
    vulnerable = [
        f"{d['name']} {d['version']}: {', '.join(v['id'] for v in d['vulns'])}"
        for d in dependencies
        if d.get("vulns")
    ]
    assert len(dependencies) > 50, "pip-audit saw too few packages to be auditing this project"
    assert not vulnerable, "\n".join(vulnerable)


def test_the_stacks_logs_hold_no_passwords_tokens_or_the_jwt_secret(shop: Shop) -> None:
    """Runs last in this module, after every request above (and those of the e2e modules
    before it) left whatever they leave in the logs."""
    logs = Path(shop.env["SHOP_STATE_DIR"]) / "logs"
    secrets = {
        "the JWT secret": jwt_secret(shop),
        "the admin password": ADMIN_PASSWORD,
        "a customer's password": PASSWORD,
        "the e2e customers' password": "a long enough password",
    }
    jwt_like = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}")
    found = []
    files = sorted(logs.glob("*.log"))
    assert files, f"no logs in {logs}"
    for path in files:
        text = path.read_text(errors="replace")
        found += [f"{path.name}: {what}" for what, value in secrets.items() if value in text]
        found += [f"{path.name}: a token {m.group()[:16]}..." for m in jwt_like.finditer(text)]
    assert not found, "\n".join(found)
