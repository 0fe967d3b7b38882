"""Accounts and access through the gateway: register, login, refresh, roles, limits, errors."""

import base64
import json
import uuid

from tests.e2e.conftest import Shop


def test_register_then_login_gives_bearer_tokens_that_open_me(shop: Shop) -> None:
    email = f"eve-{uuid.uuid4().hex[:8]}@example.com"
    created = shop.http.post(
        "/auth/register", json={"name": "Eve", "email": email, "password": "long password"}
    )
    assert created.status_code == 201
    assert created.json()["role"] == "Customer" and created.json()["email"] == email
    assert "password" not in created.json()

    tokens = shop.http.post("/auth/login", json={"email": email, "password": "long password"})
    assert tokens.status_code == 200
    body = tokens.json()
    assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 3600
    me = shop.http.get("/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["id"] == created.json()["id"]


def test_taken_email_is_409_and_wrong_password_is_401(shop: Shop) -> None:
    customer = shop.customer("Finn")
    again = shop.http.post(
        "/auth/register",
        json={"name": "Other", "email": customer.profile["email"], "password": "whatever123"},
    )
    assert again.status_code == 409
    wrong = shop.http.post(
        "/auth/login", json={"email": customer.profile["email"], "password": "not it at all"}
    )
    assert wrong.status_code == 401


def test_bad_fields_are_422_naming_the_field(shop: Shop) -> None:
    response = shop.http.post(
        "/auth/register", json={"name": "Gil", "email": "not-an-email", "password": "x"}
    )
    assert response.status_code == 422
    fields = {tuple(error["loc"]) for error in response.json()["detail"]}
    assert ("body", "email") in fields and ("body", "password") in fields


def test_no_token_is_401_and_customer_on_admin_route_is_403(shop: Shop) -> None:
    assert shop.http.get("/me").status_code == 401
    assert shop.http.post("/categories", json={"name": "x"}).status_code == 401
    customer = shop.customer("Hal")
    assert customer.post("/categories", json={"name": "Tools"}).status_code == 403
    assert customer.post(f"/orders/{uuid.uuid4()}/ship").status_code == 403


def test_refresh_token_gives_a_new_pair_but_is_no_access_token(shop: Shop) -> None:
    customer = shop.customer("Ida")
    refresh = customer.tokens["refresh_token"]
    assert shop.http.get("/me", headers={"Authorization": f"Bearer {refresh}"}).status_code == 401
    renewed = shop.http.post("/auth/refresh", json={"refresh_token": refresh})
    assert renewed.status_code == 200
    access = renewed.json()["access_token"]
    assert shop.http.get("/me", headers={"Authorization": f"Bearer {access}"}).status_code == 200
    bad = shop.http.post("/auth/refresh", json={"refresh_token": customer.tokens["access_token"]})
    assert bad.status_code == 401


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_tampered_and_unsigned_tokens_are_refused(shop: Shop) -> None:
    customer = shop.customer("Jo")
    header, payload, signature = customer.tokens["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "Admin"
    forged = f"{header}.{_b64(claims)}.{signature}"
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    for token in (forged, unsigned, "garbage"):
        response = shop.http.post(
            "/categories", json={"name": "x"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, token


def test_login_is_throttled_per_email(shop: Shop) -> None:
    email = f"kim-{uuid.uuid4().hex[:8]}@example.com"
    codes = [
        shop.http.post("/auth/login", json={"email": email, "password": "guess"}).status_code
        for _ in range(15)
    ]
    assert codes[0] == 401
    assert 429 in codes
    limited = shop.http.post("/auth/login", json={"email": email, "password": "guess"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_malformed_requests_never_get_a_server_error(shop: Shop) -> None:
    customer = shop.customer("Lou")
    attempts = [
        ("POST", "/auth/register", b"{not json"),
        ("POST", "/auth/login", b"[]"),
        ("POST", "/orders", b'{"items": "many"}'),
        ("POST", "/orders", b'{"items": [{"product_id": "x", "quantity": -1}]}'),
        ("GET", "/orders/not-a-uuid", b""),
        ("GET", "/products?min_price=abc", b""),
        ("GET", "/products?cursor=%00%01", b""),
        ("POST", "/me/payment-methods", b'{"method": "card", "token": "../../etc"}'),
        ("POST", "/auth/register", b"x" * 200_000),
    ]
    for method, path, body in attempts:
        response = customer.shop.http.request(
            method,
            path,
            content=body,
            headers={**customer.headers, "content-type": "application/json"},
        )
        assert 400 <= response.status_code < 500, (method, path, response.status_code)
