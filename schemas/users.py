"""Contracts owned by user_svc."""

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import EmailStr, Field

from schemas.envelope import Command, Event, register
from schemas.topics import USERS_COMMANDS, USERS_EVENTS

Role = Literal["Admin", "Customer"]


class _UserCommand(Command):
    TOPIC = USERS_COMMANDS
    KEY_FIELD: ClassVar[str] = "user_id"


class _UserEvent(Event):
    TOPIC = USERS_EVENTS
    KEY_FIELD: ClassVar[str] = "user_id"


@register
class UpdateUser(_UserCommand):
    """Change a user's name."""

    TYPE = "UpdateUser"
    user_id: UUID
    name: str = Field(min_length=1, max_length=255)


@register
class AddAddress(_UserCommand):
    """Add a shipping address to a user."""

    TYPE = "AddAddress"
    address_id: UUID
    user_id: UUID
    street: str = Field(max_length=255)
    city: str = Field(max_length=100)
    state: str = Field(max_length=100)
    zip_code: str = Field(max_length=20)


@register
class UserRegistered(_UserEvent):
    """A user registered (as a customer, or the first admin)."""

    TYPE = "UserRegistered"
    user_id: UUID
    name: str
    email: EmailStr
    role: Role


@register
class UserUpdated(_UserEvent):
    """A user's name changed."""

    TYPE = "UserUpdated"
    user_id: UUID
    name: str
    email: EmailStr


@register
class AddressAdded(_UserEvent):
    """A user added a shipping address."""

    TYPE = "AddressAdded"
    address_id: UUID
    user_id: UUID
    street: str
    city: str
    state: str
    zip_code: str
