"""Accounts: register, log in, refresh; the customer's profile, addresses, payment methods and
notifications."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, EmailStr, Field

from common.pagination import Cursor, Limit
from gateway_svc.api.deps import Commands, Known, Upstream, accepted, write_responses, written
from gateway_svc.api.fields import Text
from gateway_svc.auth import CurrentUser, InvalidTokenError, Tokens, tokens
from gateway_svc.facts import Facts
from gateway_svc.middleware import client_address
from gateway_svc.ratelimit import RateLimiter
from schemas.payments import AddPaymentMethod
from schemas.users import AddAddress

router = APIRouter()


class UserCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=255)
    email: EmailStr = Field(max_length=255)
    password: str = Field(min_length=8, max_length=256)


class UserPublic(BaseModel):
    id: UUID
    name: str
    email: str
    role: Literal["Admin", "Customer"]


class Login(BaseModel):
    email: EmailStr = Field(max_length=255)
    password: str = Field(min_length=1, max_length=256)


class Refresh(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenPublic(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the scheme, not a secret)
    expires_in: int


class AddressCreate(BaseModel):
    street: Text = Field(min_length=1, max_length=255)
    city: Text = Field(min_length=1, max_length=100)
    state: Text = Field(min_length=1, max_length=100)
    zip_code: Text = Field(min_length=1, max_length=20)


class PaymentMethodCreate(BaseModel):
    method: Text = Field(min_length=1, max_length=50, examples=["card"])
    token: str = Field(
        pattern=r"^tok_[A-Za-z0-9_]{1,60}$",
        examples=["tok_visa"],
        description="the card token from the payment provider; tok_decline always declines",
    )


class Page(BaseModel):
    items: list[dict[str, object]]
    next_cursor: str | None


class LoginThrottle:
    """Login attempts, each counted before its password is checked, so that N concurrent
    guesses count N and at most the limit are ever checked:

    - per email and address, ``per_minute``: a guesser is stopped at their own address;
    - per email, ten times that from all addresses together: a ceiling on distributed guessing,
      which does not apply at an address the email has signed in from before (the last
      ``remembered`` such pairs): guesses from elsewhere never lock the owner out there;
    - per address, ten times that over all emails: one address guessing many accounts.

    Only a login that succeeds is given back; one that failed, timed out or was refused
    counts."""

    def __init__(self, per_minute: int, remembered: int = 100_000) -> None:
        self._by_pair = RateLimiter(per_minute, burst=per_minute)
        self._by_email = RateLimiter(per_minute * 10, burst=per_minute * 10)
        self._by_address = RateLimiter(per_minute * 10, burst=per_minute * 10)
        self._signed_in_from = Facts(remembered)

    def _keys(self, email: str, address: str) -> list[tuple[RateLimiter, str]]:
        email = email.lower()
        keys = [(self._by_pair, f"{email} {address}"), (self._by_address, address)]
        if not self._signed_in_from.known((email, address)):
            keys.append((self._by_email, email))
        return keys

    def attempt(self, email: str, address: str) -> None:
        """Count one attempt, or refuse it (429) when any of its budgets is spent."""
        keys = self._keys(email, address)
        for limiter, key in keys:  # no await in between: checked and taken at once
            verdict = limiter.peek(key)
            if not verdict.allowed:
                raise verdict.refusal("too many login attempts; wait before trying again")
        for limiter, key in keys:
            limiter.hit(key)

    def signed_in(self, email: str, address: str) -> None:
        """Give the attempt back, and remember the address as the owner's."""
        for limiter, key in self._keys(email, address):
            limiter.give_back(key)
        self._signed_in_from.learn((email.lower(), address))


async def _login_throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.login_throttle
    return throttle


async def _registrations(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.registrations
    return limiter


@router.post(
    "/auth/register",
    status_code=201,
    tags=["auth"],
    responses={
        409: {"description": "email already registered"},
        429: {"description": "too many accounts opened from this address"},
    },
)
async def register(
    body: UserCreate,
    request: Request,
    upstream: Upstream,
    registrations: Annotated[RateLimiter, Depends(_registrations)],
) -> UserPublic:
    """Open a customer account; it can sign in as soon as this answers."""
    verdict = registrations.hit(client_address(request.scope))
    if not verdict.allowed:
        raise verdict.refusal(
            "too many accounts opened from this address; wait before trying again"
        )
    created = await upstream.post("user", "/users", body.model_dump())
    return UserPublic.model_validate(created)


@router.post(
    "/auth/login",
    tags=["auth"],
    responses={
        401: {"description": "wrong email or password"},
        429: {"description": "too many attempts"},
    },
)
async def login(
    body: Login,
    request: Request,
    upstream: Upstream,
    throttle: Annotated[LoginThrottle, Depends(_login_throttle)],
) -> TokenPublic:
    """Exchange email and password for an access token and a refresh token."""
    address = client_address(request.scope)
    throttle.attempt(body.email, address)
    user = await upstream.post("user", "/auth/verify", body.model_dump())
    throttle.signed_in(body.email, address)
    pair = tokens(request).issue(UUID(user["id"]), user["role"])
    return TokenPublic(**pair.__dict__)


@router.post(
    "/auth/refresh",
    tags=["auth"],
    responses={401: {"description": "invalid, expired or already used refresh token"}},
)
async def refresh(body: Refresh, request: Request, upstream: Upstream) -> TokenPublic:
    """Exchange a refresh token for a new pair; the role is read afresh. A refresh token works
    once: used again, it is refused and every token of that sign-in with it."""
    issuer: Tokens = tokens(request)
    try:
        grant = issuer.refresh_grant(body.refresh_token)
    except InvalidTokenError:
        raise HTTPException(401, "invalid or expired refresh token") from None
    use = {
        "jti": grant.jti,
        "family": str(grant.family),
        "user_id": str(grant.user_id),
        "expires_at": grant.expires_at.isoformat(),
    }
    try:
        await upstream.post("user", "/sessions/refresh", use)
    except HTTPException as exc:
        if exc.status_code == 409:
            raise HTTPException(401, "refresh token already used; sign in again") from None
        raise
    user = await upstream.find("user", f"/users/{grant.user_id}")
    if user is None:
        raise HTTPException(401, "invalid or expired refresh token")
    pair = issuer.issue(grant.user_id, user["role"], family=grant.family)
    return TokenPublic(**pair.__dict__)


@router.get("/me", tags=["me"])
async def me(user: CurrentUser, upstream: Upstream) -> UserPublic:
    """The signed-in user's profile."""
    return UserPublic.model_validate(await upstream.get("user", f"/users/{user.id}"))


class AddressPublic(BaseModel):
    id: UUID
    street: str
    city: str
    state: str
    zip_code: str
    created_at: datetime


class PaymentMethodPublic(BaseModel):
    id: UUID
    method: str
    created_at: datetime


@router.post(
    "/me/addresses", status_code=201, tags=["me"], responses=write_responses(AddressPublic)
)
async def add_address(
    body: AddressCreate, user: CurrentUser, upstream: Upstream, commands: Commands, facts: Known
) -> JSONResponse:
    """Add an address; usable in an order in the next request."""
    address_id = uuid4()
    command = AddAddress(address_id=address_id, user_id=user.id, **body.model_dump())
    if not await commands.apply("user", command):
        return accepted(address_id, "/me/addresses")
    facts.learn(("address", address_id, user.id))
    found = await upstream.get("user", f"/users/{user.id}/addresses/{address_id}")
    return written(AddressPublic.model_validate(found), "/me/addresses")


@router.get("/me/addresses", tags=["me"], response_model=Page)
async def addresses(
    user: CurrentUser, upstream: Upstream, limit: Limit = 50, cursor: Cursor = None
) -> Response:
    """The signed-in user's addresses."""
    return await upstream.relay(
        "user", f"/users/{user.id}/addresses", {"limit": limit, "cursor": cursor}
    )


@router.post(
    "/me/payment-methods",
    status_code=201,
    tags=["me"],
    responses=write_responses(PaymentMethodPublic),
)
async def add_payment_method(
    body: PaymentMethodCreate,
    user: CurrentUser,
    upstream: Upstream,
    commands: Commands,
    facts: Known,
) -> JSONResponse:
    """Save a payment method (its token is never shown again); usable in an order in the next
    request."""
    method_id = uuid4()
    command = AddPaymentMethod(payment_method_id=method_id, user_id=user.id, **body.model_dump())
    if not await commands.apply("payment", command):
        return accepted(method_id, "/me/payment-methods")
    facts.learn(("payment method", method_id, user.id))
    found = await upstream.get("payment", f"/payment-methods/{method_id}")
    return written(PaymentMethodPublic.model_validate(found), "/me/payment-methods")


@router.get("/me/payment-methods", tags=["me"], response_model=Page)
async def payment_methods(
    user: CurrentUser, upstream: Upstream, limit: Limit = 50, cursor: Cursor = None
) -> Response:
    """The signed-in user's payment methods (never their tokens)."""
    return await upstream.relay(
        "payment", "/payment-methods", {"user_id": user.id, "limit": limit, "cursor": cursor}
    )


@router.get("/me/notifications", tags=["me"], response_model=Page)
async def notifications(
    user: CurrentUser, upstream: Upstream, limit: Limit = 50, cursor: Cursor = None
) -> Response:
    """What the shop told the signed-in user."""
    return await upstream.relay(
        "notification", "/notifications", {"user_id": user.id, "limit": limit, "cursor": cursor}
    )
