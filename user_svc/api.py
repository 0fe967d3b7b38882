"""user_svc's HTTP API, called by the gateway (never by clients directly)."""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from common.http import Reads, Sessions
from common.pagination import Cursor, Limit, decode_cursor, page
from user_svc import queries, services
from user_svc.domain import Email, Password
from user_svc.passwords import Passwords, PasswordsBusy

router = APIRouter(tags=["users"])


async def _passwords(request: Request) -> Passwords:
    passwords: Passwords = request.app.state.passwords
    return passwords


Hashing = Annotated[Passwords, Depends(_passwords)]

BUSY: dict[int | str, dict[str, Any]] = {
    503: {"description": "too many passwords to hash at once; try again shortly"}
}


def busy() -> HTTPException:
    return HTTPException(
        503, "too many passwords to hash at once; try again shortly", headers={"Retry-After": "1"}
    )


class UserCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    email: Email
    password: Password


class UserPublic(BaseModel):
    id: UUID
    name: str
    email: str
    role: Literal["Admin", "Customer"]


@router.post("/users", status_code=201, responses={409: {"description": "email taken"}, **BUSY})
async def create_user(body: UserCreate, sessions: Sessions, passwords: Hashing) -> UserPublic:
    """Register a customer; emits UserRegistered."""
    try:
        user = await services.register_user(
            sessions, passwords, name=body.name, email=body.email, password=body.password
        )
    except services.EmailTakenError:
        raise HTTPException(409, "email already registered") from None
    except PasswordsBusy:
        raise busy() from None
    return UserPublic(id=user.id, name=user.name, email=user.email, role="Customer")


class Credentials(BaseModel):
    email: str = Field(max_length=255)
    password: str = Field(max_length=256)


class AddressPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: UUID
    street: str
    city: str
    state: str
    zip_code: str
    created_at: datetime


class AddressPage(BaseModel):
    items: list[AddressPublic]
    next_cursor: str | None


@router.post("/auth/verify", responses={401: {"description": "wrong email or password"}, **BUSY})
async def verify(body: Credentials, sessions: Sessions, passwords: Hashing) -> UserPublic:
    """The account behind these credentials; 401 when they do not match."""
    try:
        found = await services.verify_credentials(sessions, passwords, body.email, body.password)
    except PasswordsBusy:
        raise busy() from None
    if found is None:
        raise HTTPException(401, "wrong email or password")
    user, role = found
    return UserPublic(id=user.id, name=user.name, email=user.email, role=role)


class RefreshTokenUse(BaseModel):
    jti: str = Field(min_length=1, max_length=64)
    family: UUID
    user_id: UUID
    expires_at: datetime


@router.post(
    "/sessions/refresh",
    responses={409: {"description": "used before (its family is now revoked), or revoked"}},
)
async def use_refresh_token(body: RefreshTokenUse, sessions: Sessions) -> dict[str, str]:
    """Record the one use of a refresh token (the gateway rotates them). A second use answers
    409 and revokes every token of that sign-in."""
    if not await services.use_refresh_token(sessions, **body.model_dump()):
        raise HTTPException(409, "refresh token used before; its sign-in is revoked")
    return {"status": "ok"}


@router.get("/users/{user_id}/addresses")
async def read_addresses(
    user_id: UUID, sessions: Reads, limit: Limit = 50, cursor: Cursor = None
) -> AddressPage:
    """One user's addresses, oldest first."""
    rows = await queries.list_addresses(
        sessions, user_id, after=decode_cursor(cursor), limit=limit + 1
    )
    items, next_cursor = page(rows, limit)
    return AddressPage(
        items=[AddressPublic.model_validate(row) for row in items], next_cursor=next_cursor
    )


@router.get(
    "/users/{user_id}/addresses/{address_id}",
    responses={404: {"description": "no such address of this user"}},
)
async def read_address(user_id: UUID, address_id: UUID, sessions: Reads) -> AddressPublic:
    """One of the user's addresses; another user's answers 404."""
    address = await queries.get_address(sessions, user_id, address_id)
    if address is None:
        raise HTTPException(404, "address not found")
    return AddressPublic.model_validate(address)


@router.get("/users/{user_id}", responses={404: {"description": "no such user"}})
async def read_user(user_id: UUID, sessions: Reads) -> UserPublic:
    """One user's profile."""
    found = await queries.get_user(sessions, user_id)
    if found is None:
        raise HTTPException(404, "user not found")
    user, role = found
    return UserPublic(id=user.id, name=user.name, email=user.email, role=role)
