"""Contracts owned by payment_svc."""

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from schemas.envelope import Command, Event, Money, register
from schemas.topics import PAYMENTS_COMMANDS, PAYMENTS_EVENTS


@register
class AddPaymentMethod(Command):
    TYPE = "AddPaymentMethod"
    TOPIC = PAYMENTS_COMMANDS
    KEY_FIELD: ClassVar[str] = "user_id"
    payment_method_id: UUID
    user_id: UUID
    method: str = Field(min_length=1, max_length=50)
    token: str = Field(min_length=1, max_length=255)


class _PaymentEvent(Event):
    TOPIC = PAYMENTS_EVENTS
    KEY_FIELD: ClassVar[str] = "order_id"


@register
class PaymentMethodAdded(_PaymentEvent):
    TYPE = "PaymentMethodAdded"
    KEY_FIELD = "user_id"
    payment_method_id: UUID
    user_id: UUID
    method: str


@register
class PaymentSucceeded(_PaymentEvent):
    TYPE = "PaymentSucceeded"
    payment_id: UUID
    order_id: UUID
    user_id: UUID
    amount: Money
    gateway_id: str


@register
class PaymentFailed(_PaymentEvent):
    TYPE = "PaymentFailed"
    order_id: UUID
    user_id: UUID
    amount: Money
    reason: str


@register
class PaymentRefunded(_PaymentEvent):
    TYPE = "PaymentRefunded"
    payment_id: UUID
    order_id: UUID
    user_id: UUID
    amount: Money
    gateway_id: str
