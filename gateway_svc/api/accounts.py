"""Accounts: register, log in, refresh; the customer's profile, addresses, payment methods and
notifications."""

from typing import Annotated, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, EmailStr, Field

from common.pagination import Cursor, Limit
from gateway_svc.api.deps import Commands, Upstream
from gateway_svc.api.fields import Text
from gateway_svc.auth import CurrentUser, InvalidTokenError, Tokens, tokens
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


class Accepted(BaseModel):
    id: UUID
    status: str = "accepted"


class Page(BaseModel):
    items: list[dict[str, object]]
    next_cursor: str | None


class LoginThrottle:
    """Failed logins are limited per email and, more loosely, per client address."""

    def __init__(self, per_minute: int) -> None:
        self._by_email = RateLimiter(per_minute, burst=per_minute)
        self._by_address = RateLimiter(per_minute * 10, burst=per_minute * 10)

    def _keys(self, email: str, address: str) -> list[tuple[RateLimiter, str]]:
        return [(self._by_email, email.lower()), (self._by_address, address)]

    def check(self, email: str, address: str) -> None:
        for limiter, key in self._keys(email, address):
            verdict = limiter.peek(key)
            if not verdict.allowed:
                raise HTTPException(
                    429,
                    "too many failed logins; wait before trying again",
                    headers={"Retry-After": str(verdict.retry_after_s)},
                )

    def failed(self, email: str, address: str) -> None:
        for limiter, key in self._keys(email, address):
            limiter.hit(key)


async def _login_throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.login_throttle
    return throttle


@router.post(
    "/auth/register",
    status_code=201,
    tags=["auth"],
    responses={409: {"description": "email already registered"}},
)
async def register(body: UserCreate, upstream: Upstream) -> UserPublic:
    """Open a customer account."""
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
    address = request.client.host if request.client else "unknown"
    throttle.check(body.email, address)
    try:
        user = await upstream.post("user", "/auth/verify", body.model_dump())
    except HTTPException as exc:
        if exc.status_code == 401:
            throttle.failed(body.email, address)
        raise
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


@router.post("/me/addresses", status_code=202, tags=["me"])
async def add_address(body: AddressCreate, user: CurrentUser, commands: Commands) -> Accepted:
    """Add an address; it shows in GET /me/addresses shortly after."""
    address_id = uuid4()
    await commands.send(AddAddress(address_id=address_id, user_id=user.id, **body.model_dump()))
    return Accepted(id=address_id)


@router.get("/me/addresses", tags=["me"], response_model=Page)
async def addresses(
    user: CurrentUser, upstream: Upstream, limit: Limit = 50, cursor: Cursor = None
) -> Response:
    """The signed-in user's addresses."""
    return await upstream.relay(
        "user", f"/users/{user.id}/addresses", {"limit": limit, "cursor": cursor}
    )


@router.post("/me/payment-methods", status_code=202, tags=["me"])
async def add_payment_method(
    body: PaymentMethodCreate, user: CurrentUser, commands: Commands
) -> Accepted:
    """Save a payment method; it shows in GET /me/payment-methods shortly after."""
    method_id = uuid4()
    await commands.send(
        AddPaymentMethod(payment_method_id=method_id, user_id=user.id, **body.model_dump())
    )
    return Accepted(id=method_id)


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
