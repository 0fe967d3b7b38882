"""user_svc's HTTP API, called by the gateway (never by clients directly)."""

from typing import Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, EmailStr, Field

from common.http import Sessions
from user_svc import services

router = APIRouter(tags=["users"])


class UserCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    email: EmailStr = Field(max_length=255)
    password: str = Field(min_length=8, max_length=256)


class UserPublic(BaseModel):
    id: UUID
    name: str
    email: str
    role: Literal["Admin", "Customer"]


@router.post("/users", status_code=201, responses={409: {"description": "email taken"}})
async def create_user(body: UserCreate, sessions: Sessions) -> UserPublic:
    """Register a customer; emits UserRegistered."""
    try:
        user = await services.register_user(
            sessions, name=body.name, email=body.email, password=body.password
        )
    except services.EmailTakenError:
        raise HTTPException(409, "email already registered") from None
    return UserPublic(id=user.id, name=user.name, email=user.email, role="Customer")


@router.get("/users/{user_id}", responses={404: {"description": "no such user"}})
async def read_user(user_id: UUID, sessions: Sessions) -> UserPublic:
    """One user's profile."""
    found = await services.get_user(sessions, user_id)
    if found is None:
        raise HTTPException(404, "user not found")
    user, role = found
    return UserPublic(id=user.id, name=user.name, email=user.email, role=role)
